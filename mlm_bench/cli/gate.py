"""`mlm-bench gate`: two environments' benchmark files compared, the verdict printed and reported."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlm_bench.cli.parsing import Parser


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
        "base", type=Path, help="Benchmark JSON of the old environment, or a folder of one per process (the "
        "interval is then over processes)."
    )  # fmt: skip
    parser.add_argument("new", type=Path, help="Benchmark JSON of the new environment, or a folder of one per process.")
    parser.add_argument("--stat", choices=gate_inputs.STATS, default=defaults.stat, help="Timing statistic compared.")
    parser.add_argument(
        "--threshold", type=float, default=defaults.slowdown, help="Slowdown that counts (0.05 = 5%% more time)."
    )
    parser.add_argument(
        "--confidence", type=float, default=defaults.confidence, help="Confidence of the change's interval."
    )
    parser.add_argument(
        "--min-rounds", type=int, default=defaults.min_rounds, help="Gate speed only with at least this many rounds."
    )
    parser.add_argument(
        "--fail-inconclusive", action="store_true", help="Exit 3 when nothing regressed but a speed change is too "
        "noisy to call."
    )  # fmt: skip
    parser.add_argument("--loss-tolerance", type=float, default=defaults.loss_rtol, help="Relative loss tolerance.")
    parser.add_argument(
        "--metric-tolerance", type=float, default=defaults.metric_atol, help="Absolute metric tolerance."
    )
    parser.add_argument(
        "--gain-tolerance", type=float, default=defaults.gain_atol, help="Absolute context-gain tolerance (nats)."
    )
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


def cmd_gate(argv: Sequence[str]) -> int:
    from mlm_bench.contract import accepted
    from mlm_bench.gate import compare as gate
    from mlm_bench.gate import inputs as gate_inputs
    from mlm_bench.gate import report as gate_report

    args = _gate_parser().parse_args(argv)
    thresholds = gate.Thresholds(
        slowdown=args.threshold,
        stat=args.stat,
        confidence=args.confidence,
        min_rounds=args.min_rounds,
        loss_rtol=args.loss_tolerance,
        metric_atol=args.metric_tolerance,
        gain_atol=args.gain_tolerance,
    )
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
