"""Simulated library regressions, each applied at import, and what in the suite catches it.

Each regression is a `sitecustomize.py` (so it reaches pytest-xdist workers and subprocesses) that monkeypatches
transformers, tokenizers or torch. For each, the script runs `pytest tests/ -n 2` (junit) and
`pytest benchmarks/test_cpu.py` (benchmark JSON), then gates the JSON against a healthy baseline of the same
environment. It prints a Markdown table: regression, failed contract tests, gate verdict and its reasons.

    python scripts/regression_battery.py --baseline results/battery/healthy.json --out results/battery
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

ROOT = Path(__file__).resolve().parent.parent

_DEFAULT = """
import transformers
_post_init = transformers.TrainingArguments.__post_init__
def _changed(self):
    _post_init(self)
    if self.{field} == {old!r}:
        self.{field} = {new!r}
transformers.TrainingArguments.__post_init__ = _changed
"""

REGRESSIONS: dict[str, str] = {
    "linear warmup one step ahead": """
import transformers.optimization as o
_lr = o._get_linear_schedule_with_warmup_lr_lambda
o._get_linear_schedule_with_warmup_lr_lambda = lambda step, **kw: _lr(step + 1, **kw)
""",
    "BERT attention ignores the padding mask": """
from transformers.models.bert import modeling_bert as m
_forward = m.BertModel.forward
def forward(self, *args, **kwargs):
    kwargs["attention_mask"] = None
    return _forward(self, *args, **kwargs)
m.BertModel.forward = forward
""",
    "tokenizer normalisation: NFKC becomes NFC": """
import tokenizers.normalizers as n
n.NFKC = n.NFC
""",
    "BERT init std 0.01 instead of 0.02": """
from transformers.models.bert import modeling_bert as m
_init = m.BertPreTrainedModel._init_weights
def _init_weights(self, module):
    self.config.initializer_range = 0.01
    return _init(self, module)
m.BertPreTrainedModel._init_weights = _init_weights
""",
    "collator selects 16% instead of 15%": """
import transformers
_post_init = transformers.DataCollatorForLanguageModeling.__post_init__
def _sixteen(self):
    _post_init(self)
    if self.mlm_probability == 0.15:
        self.mlm_probability = 0.16
transformers.DataCollatorForLanguageModeling.__post_init__ = _sixteen
""",
    "Trainer stops dividing the loss by gradient_accumulation_steps": """
import transformers
_loss = transformers.Trainer.compute_loss
def compute_loss(self, *args, **kwargs):
    out = _loss(self, *args, **kwargs)
    k = self.args.gradient_accumulation_steps
    return out if k == 1 else (out[0] * k, *out[1:]) if isinstance(out, tuple) else out * k
transformers.Trainer.compute_loss = compute_loss
""",
    "default max_grad_norm silently 0 (no clipping)": _DEFAULT.format(field="max_grad_norm", old=1.0, new=0.0),
    "weight decay applied to LayerNorm and biases": """
import transformers
transformers.Trainer.get_decay_parameter_names = lambda self, model: [n for n, _ in model.named_parameters()]
""",
    "dropout left on under eval()": """
import torch
torch.nn.Dropout.forward = lambda self, x: torch.nn.functional.dropout(x, self.p, True)
""",
    "default adam epsilon 1e-8 -> 1e-6": _DEFAULT.format(field="adam_epsilon", old=1e-8, new=1e-6),
    "BERT forward 10% slower": """
import functools
import time
from transformers.models.bert import modeling_bert as m
_forward = m.BertForMaskedLM.forward
@functools.wraps(_forward)  # Trainer reads the forward's signature: keep it, so only the speed changes
def forward(self, *args, **kwargs):
    started = time.perf_counter()
    out = _forward(self, *args, **kwargs)
    until = time.perf_counter() + 0.1 * (time.perf_counter() - started)
    while time.perf_counter() < until:
        pass
    return out
m.BertForMaskedLM.forward = forward
""",
    "self-attention made causal (sdpa)": """
import torch
from mlm_bench.testing.attention import causal
torch.nn.functional.scaled_dot_product_attention = causal(torch.nn.functional.scaled_dot_product_attention)
""",
    "collator masks special and padding tokens (transformers#11155)": """
import torch
import transformers
_mask = transformers.DataCollatorForLanguageModeling.torch_mask_tokens
def torch_mask_tokens(self, inputs, special_tokens_mask=None, **kwargs):
    return _mask(self, inputs, special_tokens_mask=torch.zeros_like(inputs, dtype=torch.bool), **kwargs)
transformers.DataCollatorForLanguageModeling.torch_mask_tokens = torch_mask_tokens
""",
    "SDPA attention dropout left on in eval (pytorch#124464)": """
import torch
_sdpa = torch.nn.functional.scaled_dot_product_attention
def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, *args, **kw):
    return _sdpa(q, k, v, attn_mask, max(dropout_p, 0.1), *args, **kw)
torch.nn.functional.scaled_dot_product_attention = sdpa
""",
    "BERT ignores position ids": """
import torch
from transformers.models.bert import modeling_bert as m
_forward = m.BertEmbeddings.forward
def forward(self, *args, **kwargs):
    ids = kwargs.get("input_ids")
    ids = args[0] if ids is None else ids
    kwargs["position_ids"] = torch.zeros_like(ids)
    return _forward(self, *args, **kwargs)
m.BertEmbeddings.forward = forward
""",
}


def failed_tests(junit: Path) -> list[str]:
    """Names of the failed or erroring test cases of a junit file."""
    root = ET.parse(junit).getroot()
    return sorted(
        f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    )


def run(cmd: list[str], patch_dir: Path | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if patch_dir is not None:
        env["PYTHONPATH"] = str(patch_dir)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="Healthy `pytest benchmarks/test_cpu.py` JSON.")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "battery")  # results/ only by hand
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--only", nargs="*", default=None, help="Run only regressions whose name contains these.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    battery = args.out / "battery.json"
    # --only reruns some regressions: the others keep their stored rows.
    kept = json.loads(battery.read_text(encoding="utf-8")) if args.only and battery.exists() else []
    rows_by_name = {row["regression"]: row for row in kept}
    for number, (name, source) in enumerate(REGRESSIONS.items()):
        if args.only and not any(word in name for word in args.only):
            continue
        patch_dir = Path(tempfile.mkdtemp(prefix="mlm-bench-regression-"))
        (patch_dir / "sitecustomize.py").write_text(source.lstrip(), encoding="utf-8")
        junit, bench = args.out / f"tests-{number}.xml", args.out / f"bench-{number}.json"
        py = args.python
        run([py, "-m", "pytest", "tests/", "-q", "-n", "2", "--hypothesis-profile", "ci", f"--junitxml={junit}"],
            patch_dir)  # fmt: skip
        run([py, "-m", "pytest", "benchmarks/test_cpu.py", "-q", f"--benchmark-json={bench}"], patch_dir)
        gate = run([py, "-m", "mlm_bench", "gate", str(args.baseline), str(bench)], None)
        reasons = [line[2:] for line in gate.stdout.split("## Verdict", 1)[-1].splitlines() if line.startswith("- ")]
        failed = failed_tests(junit) if junit.exists() else ["(no junit: the test run did not start)"]
        row = {"regression": name, "failed_tests": failed, "gate_exit": gate.returncode, "gate": reasons}
        rows_by_name[name] = row
        print(json.dumps(row), flush=True)
    rows = [rows_by_name[name] for name in REGRESSIONS if name in rows_by_name]
    battery.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = ["| simulated regression | contract tests failed | gate (exit) |", "|---|---|---|"]
    for row in rows:
        tests = "; ".join(row["failed_tests"]) or "none"
        verdict = "; ".join(row["gate"][:4]) + (f" (+{len(row['gate']) - 4} more)" if len(row["gate"]) > 4 else "")
        lines.append(f"| {row['regression']} | {tests} | {row['gate_exit']}: {verdict or 'no regression'} |")
    (args.out / "battery.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
