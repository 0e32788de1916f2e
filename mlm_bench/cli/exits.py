"""The command's exit codes, one for each way a command ends."""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANNOT_BUILD = 4  # upgrade: a version set that cannot be resolved, installed or imported
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C
EXIT_TERMINATED = 143  # and for SIGTERM
