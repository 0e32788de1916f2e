"""The human summary of a finished run, as `mlm-bench run` prints it: context gain first, plainly when none."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def summary(results: dict[str, Any], output_dir: Path) -> str:
    """The human summary, led by context gain: what the model predicts at [MASK] beyond token frequencies."""
    ev, tr, held = results["eval"], results["train"], results["eval_set"]
    lines = [
        "",
        context_verdict(ev, held),
        f"steps {tr['steps']}  train loss {tr['train_loss']:.4f}  {tr['samples_per_second']:.1f} samples/s  "
        f"{tr['nonpad_tokens_per_second']:.0f} non-pad tokens/s  pad fraction {tr['pad_fraction']:.3f}",
    ]
    for name, label in (("mask", "[MASK]"), ("random", "random token"), ("kept", "kept token")):
        part = ev["by_treatment"][name]
        lines.append(
            f"  at {label:<12} loss {part['loss']:.4f} (unigram {part['unigram_loss']:.4f})  "
            f"accuracy {part['accuracy']:.4f}  {part['tokens']} tokens"
        )
    lines.append(
        f"held-out MLM loss {ev['loss']:.4f} nats over all {ev['selected_tokens']} selected tokens (unigram "
        f"{ev['unigram_loss']:.4f}, ln V {ev['uniform_loss']:.4f}; copying the kept 10% lowers it, context gain "
        f"does not count it)  UNK rate {results['corpus']['heldout_unk_rate']:.5f}"
    )
    if "eval_wwm" in results:
        wwm = results["eval_wwm"]
        lines.append(
            f"whole-word masking: context gain {wwm['context_gain']:+.3f} nats  loss {wwm['loss']:.4f}  "
            f"accuracy {wwm['accuracy']:.4f} over {wwm['selected_tokens']} selected tokens"
        )
    for probe in results["fill_mask"]:
        top = "  ".join(f"{p['token_str']} {p['score']:.3f}" for p in probe["predictions"])
        answer = f" (answer {probe['answer']})" if probe["answer"] else ""
        lines.append(f"fill-mask {probe['text']}{answer}: {top}")
    lines += [f"WARNING: {warning}" for warning in results.get("warnings", [])]
    lines.append(f"results: {output_dir / 'results.json'}  (model + tokenizer in {output_dir})")
    return "\n".join(lines)


# A gain within this many standard errors of zero is no evidence of context (one-sided, ~0.1% if none was learned).
NO_CONTEXT_SIGMAS = 3.0


def context_verdict(ev: dict[str, Any], eval_set: dict[str, Any]) -> str:
    """One line: the context gain with its standard error, and plainly when it is no better than zero."""
    gain, error, at_mask = ev["context_gain"], ev["context_gain_stderr"], ev["by_treatment"]["mask"]
    where = f"{at_mask['tokens']} [MASK]ed tokens of {eval_set['texts']} held-out texts"
    spread = f"± {error:.3f}" if math.isfinite(error) else "(no standard error: one text)"
    if not gain > NO_CONTEXT_SIGMAS * error:  # also when either is NaN (no [MASK]ed token, or a single text)
        return (
            f"NO CONTEXT LEARNED: context gain {gain:+.3f} {spread} nats over {where}; at [MASK] the model "
            "predicts no better than token frequencies (train longer; docs/performance.md has the ablation)"
        )
    return (
        f"context gain {gain:+.3f} {spread} nats over {where} (model {at_mask['loss']:.3f} vs unigram "
        f"{at_mask['unigram_loss']:.3f}), top-1 accuracy at [MASK] {at_mask['accuracy']:.3f}"
    )
