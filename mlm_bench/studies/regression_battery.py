"""Simulated library regressions, each applied at import, and what in the suite catches it.

Each regression is a fault of mlm_bench.testing.faults that breaks transformers, tokenizers or torch, applied by a
`sitecustomize.py` the registry writes (so it reaches pytest-xdist workers and subprocesses). For each, the battery
runs `pytest tests/ -n 2` (junit) and `pytest benchmarks/test_cpu.py` (benchmark JSON), then gates the JSON against
a healthy baseline of the same environment. It prints a Markdown table: regression, failed contract tests, gate
verdict and its reasons. Run it from a checkout (the suite and the benchmarks are the checkout's):

    python -m mlm_bench.studies.regression_battery --baseline results/battery/healthy.json --out results/battery
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from mlm_bench.testing import faults
from mlm_bench.testing.faults import Fault

BENCHMARKS = Path("benchmarks") / "test_cpu.py"
# A fault applied at interpreter start imports transformers, and with it anyio, a pytest plugin: pytest's warning
# that it can no longer rewrite anyio's asserts is an error under the suite's filterwarnings, and stopped every run.
REWRITE_WARNING_IGNORED = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
# In the order the stored rows (results/battery/) were numbered: tests-<i>.xml and bench-<i>.json are row i's.
REGRESSIONS: tuple[Fault, ...] = (
    faults.warmup_ahead,
    faults.mask_dropped,
    faults.nfc_for_nfkc,
    faults.init_std_halved,
    faults.selects_sixteen,
    faults.loss_not_divided,
    faults.clipping_off_by_default,
    faults.decay_everything,
    faults.dropout_in_eval,
    faults.adam_epsilon_changed,
    faults.forward_slower,
    faults.causal,
    faults.specials_masked,
    faults.sdpa_dropout_in_eval,
    faults.positions_ignored,
)


def failed_tests(junit: Path) -> list[str]:
    """Names of the failed or erroring test cases of a junit file."""
    root = ET.parse(junit).getroot()
    return sorted(
        f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    )


def sitecustomize(fault: Fault) -> Path:
    """A fresh directory whose sitecustomize.py applies `fault`: put on PYTHONPATH, it breaks every interpreter."""
    directory = Path(tempfile.mkdtemp(prefix="mlm-bench-regression-"))
    (directory / "sitecustomize.py").write_text(fault.source(), encoding="utf-8")
    return directory


def run(cmd: list[str], patch_dir: Path | None) -> subprocess.CompletedProcess:
    """`cmd` offline from the checkout, with `patch_dir`'s sitecustomize.py applied when one is given."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if patch_dir is not None:
        env["PYTHONPATH"] = str(patch_dir)
    return subprocess.run(cmd, env=env, capture_output=True, text=True)


def battery_row(fault: Fault, number: int, args: argparse.Namespace) -> dict:
    """The suite and the CPU benchmarks run under `fault`, the benchmarks gated against the baseline: its row."""
    patch_dir = sitecustomize(fault)
    junit, bench = args.out / f"tests-{number}.xml", args.out / f"bench-{number}.json"
    pytest = [args.python, "-m", "pytest", *REWRITE_WARNING_IGNORED, "-q"]
    run([*pytest, "tests/", "-n", "2", "--hypothesis-profile", "ci", f"--junitxml={junit}"], patch_dir)
    run([*pytest, str(BENCHMARKS), f"--benchmark-json={bench}"], patch_dir)
    gate = run([args.python, "-m", "mlm_bench", "gate", str(args.baseline), str(bench)], None)
    reasons = [line[2:] for line in gate.stdout.split("## Verdict", 1)[-1].splitlines() if line.startswith("- ")]
    failed = failed_tests(junit) if junit.exists() else ["(no junit: the test run did not start)"]
    return {"regression": fault.name, "failed_tests": failed, "gate_exit": gate.returncode, "gate": reasons}


def table(rows: list[dict]) -> str:
    """The battery as a Markdown table: each regression, the contract tests it failed, the gate's exit and reasons."""
    lines = ["| simulated regression | contract tests failed | gate (exit) |", "|---|---|---|"]
    for row in rows:
        tests = "; ".join(row["failed_tests"]) or "none"
        verdict = "; ".join(row["gate"][:4]) + (f" (+{len(row['gate']) - 4} more)" if len(row["gate"]) > 4 else "")
        lines.append(f"| {row['regression']} | {tests} | {row['gate_exit']}: {verdict or 'no regression'} |")
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    """The command line, refused outside a checkout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="Healthy `pytest benchmarks/test_cpu.py` JSON.")
    parser.add_argument("--out", type=Path, default=Path("runs") / "battery")  # results/ only by hand
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--only", nargs="*", default=None, help="Run only regressions whose name contains these.")
    args = parser.parse_args()
    if not BENCHMARKS.is_file():
        parser.error(f"{BENCHMARKS} not found here: run from a checkout of mlm-bench")
    return args


def main() -> int:
    """Runs the chosen regressions, writes battery.json and battery.md under --out, and prints the table."""
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    battery = args.out / "battery.json"
    # --only reruns some regressions: the others keep their stored rows.
    kept = json.loads(battery.read_text(encoding="utf-8")) if args.only and battery.exists() else []
    rows_by_name = {row["regression"]: row for row in kept}
    for number, fault in enumerate(REGRESSIONS):
        if args.only and not any(word in fault.name for word in args.only):
            continue
        rows_by_name[fault.name] = battery_row(fault, number, args)
        print(json.dumps(rows_by_name[fault.name]), flush=True)
    rows = [rows_by_name[fault.name] for fault in REGRESSIONS if fault.name in rows_by_name]
    battery.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (args.out / "battery.md").write_text(table(rows), encoding="utf-8")
    print(table(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
