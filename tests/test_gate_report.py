"""Gate report: the markdown verdict and the report directory (report.md and plots)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlm_bench.gate import report as gate_report
from mlm_bench.testing.gate_files import LOSSES, bench, verdict, write

ROOT = Path(__file__).resolve().parent.parent


def test_report_lists_the_known_defects_of_each_side(tmp_path: Path):
    old = bench("test_step", 1.0, versions={"transformers": "4.57.6"})
    new = bench("test_step", 1.0, versions={"transformers": "5.24.0"})
    report = gate_report.render_markdown(verdict(tmp_path, [old], [new]))
    defects_section = report.split("## Known upstream defects")[1]
    assert "- base: collator-seed-zero" in defects_section and "- new: bert-mlm-ga-loss" in defects_section


def test_cli_end_to_end_reports_regression_and_writes_report(tmp_path: Path):
    """The real command: exit 1 on a planted loss change, markdown on stdout, report.md and plots on disk."""
    pytest.importorskip("matplotlib", reason="--report plots need the `gate` extra (matplotlib)")
    base = write(tmp_path / "a.json", bench("test_run", 1.0, losses=LOSSES))
    new = write(tmp_path / "b.json", bench("test_run", 1.0, losses={"5": 8.0, "10": 7.5}))
    report = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "mlm_bench", "gate", str(base), str(new), "--report", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "REGRESSION" in done.stdout and "loss@10" in done.stdout
    assert {p.name for p in report.iterdir()} == {"report.md", "throughput.png", "loss_curves.png"}
