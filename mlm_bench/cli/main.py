"""The `mlm-bench` command: thin parsing over the library's verbs; bad input exits 2 with one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from mlm_bench.cli.bisect import cmd_bisect
from mlm_bench.cli.exits import EXIT_CANNOT_BUILD, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE
from mlm_bench.cli.export_corpus import cmd_export_corpus
from mlm_bench.cli.fingerprint import cmd_fingerprint
from mlm_bench.cli.gate import cmd_gate
from mlm_bench.cli.history import cmd_history
from mlm_bench.cli.lock import cmd_lock
from mlm_bench.cli.run import cmd_run
from mlm_bench.cli.upgrade import cmd_upgrade
from mlm_bench.errors import BuildError, RunError, Terminated, UsageError

COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "run": (cmd_run, "train, evaluate and probe one preset; writes a run directory"),
    "export-corpus": (cmd_export_corpus, "write the builtin corpus as a datasets save_to_disk directory"),
    "fingerprint": (cmd_fingerprint, "record what these library versions do to fixed inputs; list changes"),
    "gate": (cmd_gate, "compare two benchmark JSONs (old vs new environment); exit 1 on a regression"),
    "lock": (cmd_lock, "run the tests on the newest releases each line allows; --refresh moves the locks"),
    "upgrade": (cmd_upgrade, "what a new release changes: both environments built, tested, measured, reported"),
    "bisect": (cmd_bisect, "the first release of a package whose check result differs from a good release's"),
    "history": (cmd_history, "a package's releases side by side: contract tests, fingerprint (benchmarks) as a page"),
}


def usage() -> str:
    rows = "\n".join(f"  {name:<15} {text}" for name, (_, text) in COMMANDS.items())
    return (
        f"usage: mlm-bench COMMAND [ARGS]\n\ncommands:\n{rows}\n\n`mlm-bench COMMAND --help` lists a command's options."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(usage())
        return 0 if args else EXIT_USAGE
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"mlm-bench: error: unknown command {args[0]!r}: choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return command[0](args[1:])
    except UsageError as err:
        print(f"mlm-bench: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BuildError as err:
        print(f"mlm-bench: cannot build: {err}", file=sys.stderr)
        return EXIT_CANNOT_BUILD
    except RunError as err:
        print(f"mlm-bench: run failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as stop:
        if isinstance(stop, Terminated) or isinstance(stop.__cause__, Terminated):
            print("mlm-bench: terminated (SIGTERM)", file=sys.stderr)
            return EXIT_TERMINATED
        print("mlm-bench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
