"""The one error type for bad user input: the CLI prints it as one line and exits 2."""


class UsageError(ValueError):
    """User input we refuse: the message names the problem and the fix."""
