"""`mlm-bench bisect`: the first published release of a package whose check result differs from a good one's."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from mlm_bench.cli.parsing import Parser, environment_options


def _parser() -> Parser:
    from mlm_bench.bisect import index
    from mlm_bench.bisect.run import PACKAGES

    parser = Parser(
        prog="mlm-bench bisect",
        description="Find the first release of PACKAGE between --good and --bad whose CHECK result differs from "
        "--good's (a breakage or a fix alike, as git bisect's old and new): each probed release built as the base's "
        "pins plus that release (uv, cached by what they hold), about log2(n) of them, then the boundary's "
        "neighbours. CHECK is a pytest node id of this checkout, defect:KEY (the registry entry's test with xfails "
        "off) or fingerprint:FIELD. Needs a checkout of mlm-bench and uv. Exit 0: the boundary found; 2: bad "
        "input; 3: skipped releases or out-of-order results leave it open; 4: the base cannot be built.",
    )
    parser.add_argument("package", choices=PACKAGES, help="The package whose releases to bisect.")
    parser.add_argument("--good", required=True, help="The older release, whose result is the old one.")
    parser.add_argument("--bad", required=True, help="The newer release, whose result differs.")
    parser.add_argument("--check", required=True, help="tests/...::test_x, defect:KEY or fingerprint:FIELD.")
    parser.add_argument("--index-url", default=index.PYPI, help="The package index to list releases from.")
    parser.add_argument("--pre", action="store_true", help="Probe pre-releases too.")
    parser.add_argument("--yanked", action="store_true", help="Probe yanked releases too.")
    parser.add_argument("--out", type=Path, default=None, help="Report folder (default: runs/bisect/<UTC time>).")
    environment_options(parser, "in every probe")
    return parser


def cmd_bisect(argv: Sequence[str]) -> int:
    from mlm_bench.bisect import report
    from mlm_bench.bisect.run import Plan, run
    from mlm_bench.envs.lock import checkout
    from mlm_bench.errors import UsageError
    from mlm_bench.runs.stop import sigterm_as_interrupt

    args = _parser().parse_args(argv)
    out = args.out or Path("runs") / "bisect" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} already holds files: pass an empty or new --out")
    plan = Plan(args.package, args.good, args.bad, args.check, out.resolve(), args.cache.resolve(), args.base_lock,
                args.torch, args.index_url, args.pre, args.yanked)  # fmt: skip
    with sigterm_as_interrupt():  # a cancelled job stops the probe's subprocess too (see cli.upgrade)
        outcome = run(plan, checkout(Path.cwd().resolve()), lambda line: print(f"mlm-bench: {line}", flush=True))
    command = ["mlm-bench", "bisect", *argv]
    written = report.write(plan, outcome, command)
    print(report.render(plan, outcome, command))
    code = report.exit_code(outcome)
    print(f"mlm-bench: {report.headline(plan, outcome)} (exit {code}; {written[1]})",
          file=sys.stderr if code else sys.stdout)  # fmt: skip
    return code
