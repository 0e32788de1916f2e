"""`mlm-bench history`: a package's releases side by side, as JSON and one self-contained HTML page."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlm_bench.cli.parsing import Parser, environment_options


def _parser() -> Parser:
    from mlm_bench.bisect import index
    from mlm_bench.bisect.run import PACKAGES

    parser = Parser(
        prog="mlm-bench history",
        description="Build each release of PACKAGE as the base's pins plus that release (uv, cached), run the "
        "contract tests and the fingerprint in it (--benchmarks: the CPU benchmarks too), and write history.json and "
        "index.html, a releases x checks table and the benchmarks over releases. A release already run with the same "
        "version set is reused. Needs a checkout of mlm-bench and uv. Exit 0: written; 2: bad input; 4: the base "
        "cannot be built.",
    )
    parser.add_argument("package", nargs="?", default="transformers", choices=PACKAGES, help="Whose releases.")
    parser.add_argument("--releases", nargs="+", default=None, help="The releases (default: the last of each minor "
                        "line since --since, as the index lists them).")  # fmt: skip
    parser.add_argument("--since", default="4.57", help="The oldest minor line of the default releases.")
    parser.add_argument("--benchmarks", action="store_true", help="Run the CPU benchmarks on each release too.")
    parser.add_argument("--processes", type=int, default=2, help="Benchmark processes per release (>= 2).")
    parser.add_argument("--tests", default=None, help="pytest -k of the contract tests (default: all).")
    parser.add_argument("--index-url", default=index.PYPI, help="The package index to list releases from.")
    parser.add_argument("--out", type=Path, default=None, help="Folder (default: runs/history/PACKAGE); reused.")
    environment_options(parser, "in every release's environment")
    return parser


def cmd_history(argv: Sequence[str]) -> int:
    from mlm_bench.bisect import index
    from mlm_bench.envs.lock import checkout
    from mlm_bench.errors import UsageError
    from mlm_bench.history import report
    from mlm_bench.history.collect import Plan, collect, last_of_each_minor
    from mlm_bench.runs.stop import sigterm_as_interrupt

    args = _parser().parse_args(argv)
    if args.benchmarks and args.processes < 2:
        raise UsageError(f"--processes {args.processes}: the interval is over processes, pass 2 or more")
    found = index.releases(index.fetch(args.package, args.index_url))
    if args.releases:
        releases = [str(v) for v in sorted({index.listed(found, r, "--releases") for r in args.releases})]
    else:
        releases = last_of_each_minor(found, args.since)
    out = (args.out or Path("runs") / "history" / args.package).resolve()
    plan = Plan(args.package, tuple(releases), out, args.cache.resolve(), args.base_lock, args.torch, args.benchmarks,
                args.processes, args.tests)  # fmt: skip
    say = lambda line: print(f"mlm-bench: {line}", flush=True)  # noqa: E731
    with sigterm_as_interrupt():  # a cancelled job stops the running stage's subprocess too (see cli.upgrade)
        base, records = collect(plan, checkout(Path.cwd().resolve()), say)
    data = report.build(plan, base, records, ["mlm-bench", "history", *argv])
    written = report.write(out, data)
    built = sum("error" not in r for r in records)
    print(f"mlm-bench: {built} of {len(records)} releases ran; {len(data['rows'])} rows differ; {written[1]}")
    return 0
