"""Error types the CLI turns into one line: bad user input (exit 2) and a run that could not finish (exit 1)."""


class UsageError(ValueError):
    """User input we refuse: the message names the problem and the fix."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM after it claimed its directory; `kept` is its last complete checkpoint."""

    def __init__(self, kept: object) -> None:
        super().__init__()
        self.kept = kept


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where it arrives so a run stops as under Ctrl-C; the CLI exits 143 (128 + SIGTERM), as a
    process the signal killed would, so schedulers see what happened."""


class RunError(RuntimeError):
    """A run that started but could not finish (e.g. the loss diverged): the message says what was kept."""


class BuildError(RuntimeError):
    """An environment of another version set that cannot be resolved or built: the message names the conflict."""
