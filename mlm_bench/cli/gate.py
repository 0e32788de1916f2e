"""`mlm-bench gate`: two environments' benchmark files compared, the verdict printed and reported."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from mlm_bench.cli.parsing import Parser

# The numeric threshold options: flag, the Thresholds field it sets, its type, its help.
THRESHOLD_OPTIONS = (
    ("--threshold", "slowdown", float, "Slowdown that counts (0.05 = 5%% more time)."),
    ("--confidence", "confidence", float, "Confidence of the change's interval."),
    ("--min-rounds", "min_rounds", int, "Gate speed only with at least this many rounds."),
    ("--loss-tolerance", "loss_rtol", float, "Relative loss tolerance."),
    ("--metric-tolerance", "metric_atol", float, "Absolute metric tolerance."),
    ("--gain-tolerance", "gain_atol", float, "Absolute context-gain tolerance (nats)."),
)


def _gate_parser() -> Parser:
    """The gate command's options, with the gate's own thresholds as defaults."""
    from mlm_bench.gate import compare as gate
    from mlm_bench.gate import inputs as gate_inputs

    defaults = gate.Thresholds()
    parser = Parser(
        prog="mlm-bench gate",
        description="Compare two `pytest benchmarks/ --benchmark-json` files (old, new environment). "
        "Exit 0: no regression; 1: regression; 2: unusable input; 3 (with --fail-inconclusive): no regression, but "
        "a speed change too noisy to call.",
    )
    parser.add_argument(
        "base", type=Path, nargs="?", help="Benchmark JSON of the old environment, or a folder of one per process "
        "(the interval is then over processes)."
    )  # fmt: skip
    parser.add_argument("new", type=Path, nargs="?", help="Benchmark JSON of the new environment, or a folder of one "
                        "per process.")  # fmt: skip
    parser.add_argument("--results", nargs=2, type=Path, metavar=("BASE", "NEW"), help="Instead of benchmark files: "
                        "two results.json of one `mlm-bench run` config in each environment, their learning "
                        "compared under the tolerances below.")  # fmt: skip
    parser.add_argument("--stat", choices=gate_inputs.STATS, default=defaults.stat, help="Timing statistic compared.")
    for flag, name, kind, text in THRESHOLD_OPTIONS:
        metavar = flag.removeprefix("--").upper().replace("-", "_")
        parser.add_argument(flag, dest=name, metavar=metavar, type=kind, default=getattr(defaults, name), help=text)
    parser.add_argument(
        "--fail-inconclusive", action="store_true", help="Exit 3 when nothing regressed but a speed change is too "
        "noisy to call."
    )  # fmt: skip
    parser.add_argument("--fingerprints", nargs=2, type=Path, metavar=("BASE", "NEW"), help="Fingerprint JSONs.")
    parser.add_argument(
        "--accepted", type=Path, default=None,
        help="Accept file of reviewed fingerprint changes (the package's: mlm_bench/contract/fingerprints/"
        "accepted.json); without it every fingerprint change is a regression.",
    )  # fmt: skip
    parser.add_argument("--junit", nargs=2, type=Path, metavar=("BASE", "NEW"), help="Contract-test junit XMLs.")
    parser.add_argument("--tests-exit-code", type=int, default=None, help="pytest exit code of the new env's tests.")
    parser.add_argument("--report", type=Path, default=None, help="Write report.md and PNG plots to this directory.")
    return parser


def _gate_runs(base: Path, new: Path, thresholds) -> int:
    """Two runs' results.json compared: exit 1 where a figure moved beyond its tolerance."""
    from mlm_bench.gate.compare import EXIT_OK, EXIT_REGRESSION
    from mlm_bench.gate.report import render_runs
    from mlm_bench.gate.runs import compare_runs, load_run

    quality = compare_runs(load_run(base), load_run(new), thresholds)
    print(render_runs(quality, base, new), end="")
    return EXIT_REGRESSION if any(q.changed for q in quality) else EXIT_OK


def cmd_gate(argv: Sequence[str]) -> int:
    from mlm_bench.contract import accepted
    from mlm_bench.errors import UsageError
    from mlm_bench.gate import compare as gate
    from mlm_bench.gate import inputs as gate_inputs
    from mlm_bench.gate import report as gate_report

    args = _gate_parser().parse_args(argv)
    if bool(args.results) == bool(args.base and args.new):
        raise UsageError("pass two benchmark files (BASE NEW) or --results BASE NEW, one of them")
    # Each threshold option's dest is the Thresholds field it sets.
    thresholds = gate.Thresholds(**{f.name: getattr(args, f.name) for f in dataclasses.fields(gate.Thresholds)})
    fingerprints = None
    if args.fingerprints:
        fingerprints = (
            gate_inputs.load_fingerprint(args.fingerprints[0]),
            gate_inputs.load_fingerprint(args.fingerprints[1]),
        )
    junit = (
        []
        if not args.junit
        else [(s, gate_inputs.junit_outcome(p)) for s, p in zip(("base", "new"), args.junit, strict=True)]
    )
    if args.results:
        return _gate_runs(*args.results, thresholds)
    entries = accepted.load(args.accepted) if args.accepted else []
    result = gate.compare(
        gate_inputs.load_side(args.base),
        gate_inputs.load_side(args.new),
        thresholds,
        fingerprints,
        accepted_entries=entries,
        junit=junit,
        tests_exit_code=args.tests_exit_code,
        fail_inconclusive=args.fail_inconclusive,
    )
    print(gate_report.render_markdown(result))
    if args.report:
        written = gate_report.write_report(result, args.report)
        print("report: " + ", ".join(str(p) for p in written))
    return result.exit_code
