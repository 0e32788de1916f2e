"""`mlm-bench upgrade`: what a new release changes for the user, in one command and one report."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mlm_bench.cli.parsing import Parser, environment_options


def _parser() -> Parser:
    from mlm_bench.upgrade import stages
    from mlm_bench.upgrade.run import SLOWDOWN

    parser = Parser(
        prog="mlm-bench upgrade",
        description="Compare this environment (or --base-lock) with the same packages plus SPEC, e.g. `mlm-bench "
        "upgrade transformers==5.25.0 accelerate==1.16.0`: both built fresh (uv, cached by what they hold), then the "
        "contract tests, the fingerprint and the CPU benchmarks (processes alternating) run in each, and one report "
        "says what to do. Needs a checkout of mlm-bench and uv (pip install 'mlm-bench[envs]'). Exit 0: no "
        "regression; 1: regression; 2: bad input; 3 (with --fail-inconclusive): no regression, but a speed change "
        "too noisy to call; 4: a side cannot be resolved, built or imported (nothing half-built is kept).",
    )
    parser.add_argument("spec", nargs="*", help="Packages to change, e.g. transformers==5.25.0.")
    parser.add_argument("--latest", action="store_true", help="The newest transformers, datasets, tokenizers and "
                        "accelerate the resolver allows with the base's other packages (instead of SPEC).")  # fmt: skip
    parser.add_argument("--stages", nargs="+", choices=(*stages.STAGES, stages.SETUP), default=None, help="What runs "
                        "(default: all; setup only with --model).")  # fmt: skip
    parser.add_argument("--model", type=Path, default=None, help="Your saved model and tokenizer (save_pretrained or "
                        "`mlm-bench run`): on both sides its contract (pytest --pyargs mlm_bench.contract), a short "
                        "run of your settings from it, and its model, tokenizer, checkpoint and results.json crossed "
                        "between the sides, both ways (stage setup).")  # fmt: skip
    parser.add_argument("--config", type=Path, default=None, help="The settings you train it with (JSON or YAML, as "
                        "`mlm-bench run --config`; default: its run's results.json, else tiny-zh).")  # fmt: skip
    parser.add_argument("--model-steps", type=int, default=20, help="Steps of your short run on each side.")
    parser.add_argument("--processes", type=int, default=3, help="Benchmark processes per side, alternating.")
    parser.add_argument("--tests", default=None, help="pytest -k of the contract tests (default: all).")
    parser.add_argument("--benchmarks", default=None, help="pytest -k of the CPU benchmarks (default: all).")
    parser.add_argument("--accepted", type=Path, default=None, help="Accept file of reviewed fingerprint changes "
                        "(default: the package's).")  # fmt: skip
    parser.add_argument("--threshold", type=float, default=SLOWDOWN, help="Slowdown a whole interval must clear "
                        "to be a regression (default 0.05, calibrated at 3 processes).")  # fmt: skip
    parser.add_argument("--fail-inconclusive", action="store_true", help="Exit 3 when a speed change is too noisy.")
    parser.add_argument("--out", type=Path, default=None, help="Report folder (default: runs/upgrade/<UTC time>).")
    environment_options(parser, "on both sides")
    return parser


def cmd_upgrade(argv: Sequence[str]) -> int:
    from mlm_bench.envs import build as envs
    from mlm_bench.envs.lock import checkout
    from mlm_bench.errors import UsageError
    from mlm_bench.gate.compare import Thresholds
    from mlm_bench.runs.stop import sigterm_as_interrupt, taken
    from mlm_bench.upgrade import report, stages
    from mlm_bench.upgrade.run import Plan, run

    args = _parser().parse_args(argv)
    if bool(args.spec) == args.latest:
        raise UsageError("name the packages to change (e.g. transformers==5.25.0) or pass --latest, not both")
    chosen = args.stages or [*stages.STAGES, *[stages.SETUP] * bool(args.model)]
    if stages.SETUP in chosen and not args.model:
        raise UsageError("stage setup checks your own model: pass --model DIR (a save_pretrained directory)")
    if args.config and not args.model:
        raise UsageError("--config is the settings of your model: pass --model DIR with it")
    if args.model and not (args.model / "config.json").is_file():
        raise UsageError(f"{args.model} holds no config.json: pass a directory written by save_pretrained or by "
                         "`mlm-bench run` as --model")  # fmt: skip
    if args.processes < 2 and "benchmarks" in chosen:
        raise UsageError(f"--processes {args.processes}: the speed interval is over processes, so pass at least 2")
    out = args.out or Path("runs") / "upgrade" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} already holds files: pass an empty or new --out")
    plan = Plan(spec=envs.parse_spec(args.spec), out=out.resolve(), cache=args.cache.resolve(),
                base_lock=args.base_lock, torch=args.torch, stages=tuple(chosen), processes=args.processes,
                tests=args.tests, benchmarks=args.benchmarks, accepted=args.accepted,
                thresholds=Thresholds(slowdown=args.threshold), model=args.model and args.model.resolve(),
                config=args.config and args.config.resolve(), model_steps=args.model_steps)  # fmt: skip
    # SIGTERM (a cancelled CI job) stops the upgrade as Ctrl-C does: the running stage's subprocess is killed
    # rather than left running on its own, and main exits 143.
    with sigterm_as_interrupt():
        try:
            outcome = run(plan, checkout(Path.cwd().resolve()), lambda line: print(f"mlm-bench: {line}", flush=True))
        except KeyboardInterrupt:
            taken()
            print(f"mlm-bench: stopped before the report; what ran so far is in {plan.out}", file=sys.stderr)
            raise
    code = outcome.upgrade.exit_code(args.fail_inconclusive)
    written = report.write(outcome, plan.out, ["mlm-bench", "upgrade", *argv], code)
    print(report.render(outcome, code))
    print(f"report: {', '.join(str(p) for p in written)}")
    # The last line says what to do, after pages of report.
    print(f"mlm-bench: {outcome.upgrade.headline()} (exit {code}; {plan.out / 'upgrade.md'})",
          file=sys.stderr if code else sys.stdout)  # fmt: skip
    return code
