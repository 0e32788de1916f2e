"""`mlm-bench lock`: the suite on the newest releases each tox line allows; --refresh moves the locks."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from mlm_bench.cli.exits import EXIT_FAILED
from mlm_bench.cli.parsing import Parser


def cmd_lock(argv: Sequence[str]) -> int:
    parser = Parser(
        prog="mlm-bench lock",
        description="Run `pytest tests/` on the newest versions each tox line allows, in a fresh environment under "
        "--work, and list the pins that moved against the committed lock (locks/LINE.txt). With --refresh, write "
        "a line's lock only where the suite passed. Needs uv (pip install 'mlm-bench[envs]') and a checkout. Exit "
        "0: passed on every line; 1: failed on one (its lock unchanged); 2: bad input.",
    )
    from mlm_bench.envs import lock

    parser.add_argument("--line", nargs="+", choices=list(lock.LINES), default=list(lock.LINES), help="Tox lines.")
    parser.add_argument("--refresh", action="store_true", help="Write each line's lock where the suite passed.")
    parser.add_argument(
        "--torch", default=None, help="torch requirement installed first (default: the installed torch's release, "
        "e.g. torch==2.13.0, which pip takes from the local CPU wheel on our machines)."
    )  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("runs") / "locks", help="Candidate locks and environments.")
    args = parser.parse_args(argv)
    from importlib import metadata

    root = lock.checkout(Path.cwd().resolve())
    torch_spec = args.torch or f"torch=={metadata.version('torch').split('+')[0]}"
    failed = [line for line in args.line if not lock.verify(root, line, root / args.work / line, torch_spec,
                                                            args.refresh).passed]  # fmt: skip
    if failed:
        kept = "; its lock is unchanged" if args.refresh else ""
        print(
            f"mlm-bench: the suite failed on the newest versions of {', '.join(failed)}{kept}: read the failures "
            "above, then fix the suite or register the upstream defect, and run this again",
            file=sys.stderr,
        )
        return EXIT_FAILED
    done = "locks written" if args.refresh else "`mlm-bench lock --refresh` moves the locks to these versions"
    print(f"mlm-bench: the suite passed on the newest versions of {', '.join(args.line)}: {done}")
    return 0
