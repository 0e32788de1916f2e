"""Card: what a run directory says about itself to whoever opens it: a model card (README.md) and its loss curve."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from mlm_bench.config import flat_fields

CARD_FILE = "README.md"
CURVE_FILE = "loss_curve.png"
LOSS_AXIS, GAIN_AXIS = "training loss (nats)", "held-out context gain at [MASK] (nats)"
# The settings a reader needs to place the run; results.json has them all.
CARD_SETTINGS = (
    "preset", "dataset", "model_name_or_path", "max_length", "packing", "flatten", "mask", "mlm_probability",
    "batch_size", "max_steps", "num_train_epochs", "learning_rate", "seed",
)  # fmt: skip

logger = logging.getLogger(__name__)


def write_card(directory: Path, results: dict[str, Any]) -> list[Path]:
    """README.md from the run's results, and loss_curve.png (with the context gain of --eval_steps) when matplotlib
    is installed; the files written."""
    curve = plot_loss_curve(results["train"], directory / CURVE_FILE)
    card = directory / CARD_FILE
    card.write_text(model_card(results, curve is not None), encoding="utf-8")
    return [card] if curve is None else [card, curve]


def model_card(results: dict[str, Any], with_curve: bool = True) -> str:
    """The run as Markdown: what was trained on what, how, and what it learned (figures from results.json)."""
    settings, train, ev = flat_fields(results["settings"]), results["train"], results["eval"]
    at_mask = ev["by_treatment"]["mask"]
    versions = ", ".join(f"{name} {version}" for name, version in results["versions"].items())
    lines = [
        f"# Masked-LM run: `{settings['preset']}`",
        "",
        f"Trained by mlm-bench with `{' '.join(results['command'])}` ({versions}).",
        "",
        f"- corpus: {results['corpus']['name']}, {results['corpus']['train_rows']:,} train rows, "
        f"{results['corpus']['heldout_rows']:,} held out",
        f"- model: {results['model_parameters'] / 1e6:.2f}M parameters, vocabulary {results['vocab_size']:,}",
        f"- training: {train['steps']} steps, train loss {_number(train['train_loss'])}, "
        f"{_number(train['samples_per_second'])} samples/s, padding {_number(train['pad_fraction'])}",
        "",
        "## Held-out figures",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| context gain at [MASK] (nats over token frequencies) | {_number(ev['context_gain'])} "
        f"± {_number(ev.get('context_gain_stderr'))} |",
        f"| loss at [MASK] (model / unigram) | {_number(at_mask['loss'])} / {_number(at_mask['unigram_loss'])} |",
        f"| top-1 accuracy at [MASK] | {_number(at_mask['accuracy'])} |",
        f"| loss over all selected positions | {_number(ev['loss'])} |",
        f"| positions scored at [MASK] | {at_mask['tokens']:,} |",
        "",
        *_eval_curve_lines(train.get("eval_curve", [])),
        *[line for warning in results.get("warnings", []) for line in (f"**Warning:** {warning}", "")],
        "## Fill-mask",
        "",
        *[_probe_line(probe) for probe in results["fill_mask"]],
        "",
        "## Settings",
        "",
        *[f"- `{name}`: {settings[name]}" for name in CARD_SETTINGS if name in settings],
        "",
        (f"The loss curve is `{CURVE_FILE}`; e" if with_curve else "E")
        + "very setting and figure is in `results.json`.",
    ]
    return "\n".join(lines) + "\n"


def curve_series(train: dict[str, Any]) -> dict[str, tuple[list[float], list[float]]]:
    """What the plot draws, by axis label: the logged training loss, and the periodic held-out context gain
    (--eval_steps) where there is one, each against the optimizer step."""
    series = {LOSS_AXIS: ([p["step"] for p in train["loss_curve"]], [p["loss"] for p in train["loss_curve"]])}
    gains = [p for p in train.get("eval_curve", []) if p.get("eval_context_gain") is not None]
    if gains:
        series[GAIN_AXIS] = ([p["step"] for p in gains], [p["eval_context_gain"] for p in gains])
    return series


def plot_loss_curve(train: dict[str, Any], path: Path) -> Path | None:
    """curve_series as a PNG (the context gain on a second axis); None (and a log line) without matplotlib or
    a logged loss."""
    if not train["loss_curve"]:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info(f"no {CURVE_FILE}: install matplotlib (pip install 'mlm-bench[gate]') for the plot")
        return None
    series = curve_series(train)
    fig, loss_axis = plt.subplots(figsize=(6, 3.5))
    for axis, label, color in ((loss_axis, LOSS_AXIS, "C0"), (None, GAIN_AXIS, "C1")):
        if label in series:
            axis = axis or loss_axis.twinx()
            axis.plot(*series[label], marker=".", color=color)
            axis.set_ylabel(label, color=color)
    loss_axis.set_xlabel("optimizer step")
    loss_axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _eval_curve_lines(curve: list[dict[str, float]]) -> list[str]:
    """The context gain of the periodic held-out passes (--eval_steps), when there were any."""
    if not curve:
        return []
    points = ", ".join(f"step {point['step']}: {_number(point.get('eval_context_gain'))}" for point in curve)
    return [f"Context gain during training: {points}.", ""]


def _probe_line(probe: dict[str, Any]) -> str:
    top = ", ".join(f"{p['token_str']} {p['score']:.3f}" for p in probe["predictions"])
    answer = f" (answer {probe['answer']})" if probe.get("answer") else ""
    return f"- `{probe['text']}`{answer}: {top}"


def _number(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.4g}"
