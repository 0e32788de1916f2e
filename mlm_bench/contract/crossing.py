"""Artifacts across versions: what one environment writes from the user's setup (a short training run's checkpoint
halfway and weights at the end; the trained model and the tokenizer saved as users save them, with the ids and
logits they give) and what another environment makes of them. `mlm-bench upgrade --model` runs `write` on both
sides, then `read` on each side of what the other wrote, so every path is tried in both directions.

Each path ends as one of: works; refused (the library would not load it, said in one line, named where the
registry knows it); broken (loaded, but other ids, other logits, or a resumed run that silently diverges); for a
checkpoint, differs (not bit for bit, where the two versions' own runs differ too).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

from mlm_bench.compat import HEAD_BIAS
from mlm_bench.config import Settings
from mlm_bench.contract import defects
from mlm_bench.contract.setup import Setup, load_model, load_setup, load_tokenizer
from mlm_bench.data.collate import build_collator
from mlm_bench.data.encode import encode
from mlm_bench.seeding import seed_everything
from mlm_bench.training.train import train

PROBES = 8  # held-out texts whose ids and logits cross
# Logits of one float32 model loaded by two versions: other kernels may reorder reductions, nothing more.
LOGITS_ATOL = 1e-4
STEPS = 6  # the short training run: a checkpoint at STEPS // 2, which the other side resumes to STEPS
WORKS, REFUSED, BROKEN = "works", "refused", "broken"
DIFFERS = "differs"  # a resumed run where the versions themselves compute differently: not bit for bit, not broken


@dataclass(frozen=True)
class Crossed:
    """One cross-version path as the reading side found it."""

    path: str  # what crossed: "tokenizer", "model" or "checkpoint"
    writer: str  # transformers version that wrote it
    reader: str  # transformers version that read it
    status: str  # WORKS, REFUSED, BROKEN or DIFFERS
    detail: str  # what was compared and found, or the refusal in one line
    known: str | None = None  # the registry's defect key where it names what happened


def write(setup: Setup, out: Path) -> None:
    """A short training run of the user's model here, halfway (its checkpoint) and whole (its final weights); the
    trained model and the tokenizer saved as users save them, with the ids and logits they give here."""
    _train(setup, out / "half", stop_at=STEPS // 2)
    trained = _train(setup, out / "whole").eval()
    save_file(_weights(trained), str(out / "whole.safetensors"))
    tokenizer, saved = setup.tokenizer(), out / "saved"
    trained.save_pretrained(str(saved))
    tokenizer.save_pretrained(str(saved))
    texts = _texts(setup)
    ids, logits = _probe(tokenizer, trained, texts)
    save_file({"logits": logits}, str(out / "logits.safetensors"))
    record = {"transformers": version("transformers"), "texts": texts, "ids": ids}
    (out / "written.json").write_text(json.dumps(record), encoding="utf-8")


def read(setup: Setup, written: Path, own: Path, out: Path) -> list[Crossed]:
    """What this environment makes of what the other wrote into `written`: its saved model and tokenizer, and its
    halfway checkpoint resumed here to the end, against the other's whole run and this side's own (in `own`)."""
    writer = json.loads((written / "written.json").read_text(encoding="utf-8"))
    here = version("transformers")
    return [*_read_saved(written, writer, here), _resume(setup, written, own, out, (writer["transformers"], here))]


def _texts(setup: Setup) -> list[str]:
    rows, column = setup.heldout()
    return [text for text in rows[column] if text.strip()][:PROBES]


def _probe(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, texts: list[str]) -> tuple[list, torch.Tensor]:
    """The ids of `texts` and the model's logits on them."""
    ids = _ids(tokenizer, texts)
    return ids, _logits(model, ids)


def _ids(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """The probes' ids, cut as both sides cut them."""
    return tokenizer(texts, truncation=True, max_length=64)["input_ids"]


def _logits(model: PreTrainedModel, ids: list[list[int]]) -> torch.Tensor:
    """The model's logits on `ids` padded as one batch (id 0, masked out): the reader needs no tokenizer for it."""
    width = max(map(len, ids))
    padded = torch.tensor([row + [0] * (width - len(row)) for row in ids])
    real = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids])
    with torch.no_grad():
        return model(input_ids=padded, attention_mask=real).logits.contiguous()


def _refusal(err: Exception) -> tuple[str, str | None]:
    """An exception in one line, and the registered defect whose signature it carries."""
    line = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
    known = next((d.key for d in defects.DEFECTS if d.signature and d.signature in line), None)
    return line, known


def _read_saved(written: Path, writer: dict[str, Any], here: str) -> list[Crossed]:
    """Load the other side's saved tokenizer (same ids) and model (logits within LOGITS_ATOL on the writer's ids),
    each on its own: one refused does not hide what the other does."""
    versions = (writer["transformers"], here)
    try:
        tokenizer = load_tokenizer(written / "saved")
        same = _ids(tokenizer, writer["texts"]) == writer["ids"]
        found = [Crossed("tokenizer", *versions, WORKS if same else BROKEN, "same ids" if same else "other ids")]
    except Exception as err:  # whatever the library raises on a file it cannot read is the finding
        found = [Crossed("tokenizer", *versions, REFUSED, *_refusal(err))]
    try:
        model = load_model(written / "saved")
    except Exception as err:
        return [*found, Crossed("model", *versions, REFUSED, *_refusal(err))]
    logits, expected = _logits(model, writer["ids"]), load_file(str(written / "logits.safetensors"))["logits"]
    worst = (logits - expected).abs().max().item() if logits.shape == expected.shape else float("inf")
    if worst <= LOGITS_ATOL:
        return [*found, Crossed("model", *versions, WORKS, f"logits within {worst:.1e} of the writer's (tolerance "
                                f"{LOGITS_ATOL:g})")]  # fmt: skip
    known = _untied_head_bias(model, written, writer["ids"], expected)
    return [*found, Crossed("model", *versions, BROKEN, f"logits off the writer's by up to {worst:.1e} (tolerance "
                            f"{LOGITS_ATOL:g})", known)]  # fmt: skip


def _untied_head_bias(model: PreTrainedModel, written: Path, ids: list, expected: torch.Tensor) -> str | None:
    """bert-untied-head-bias where it explains broken logits: with the output bias the writer trained (the saved
    decoder bias, else the saved head bias, as 4.57 saves its one) put in the reader's decoder, they are right."""
    path, head = written / "saved" / "model.safetensors", getattr(getattr(model, "cls", None), "predictions", None)
    weights = load_file(str(path)) if path.is_file() and head is not None else {}
    trained = weights.get(HEAD_BIAS, weights.get("cls.predictions.bias"))
    if trained is None or head.decoder.bias is None or head.decoder.bias.shape != trained.shape:
        return None
    with torch.no_grad():
        head.decoder.bias.copy_(trained)
    worst = (_logits(model, ids) - expected).abs().max().item()
    return "bert-untied-head-bias" if worst <= LOGITS_ATOL else None


def _short(settings: Settings) -> Settings:
    """The user's settings cut to the short run on the CPU in float32, uncompiled: what both sides can run alike."""
    return settings.replace(max_steps=STEPS, save_steps=STEPS // 2, logging_steps=1, eval_steps=0, warmup_steps=0,
                            batch_size=min(settings.training.batch_size, 8), device="cpu", bf16=False, tf32=False,
                            torch_compile="off", flatten=False)  # fmt: skip


class _StopAt(TrainerCallback):
    """Ends training once step `step` is done and saved, as a kill right after a checkpoint would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def _train(setup: Setup, out: Path, stop_at: int | None = None, resume_from: Path | None = None) -> PreTrainedModel:
    """The short run of the user's model on its held-out rows (to the end, to `stop_at`, or from a checkpoint)."""
    settings = _short(setup.settings)
    seed_everything(settings.training.seed)
    tokenizer, model = setup.tokenizer(), setup.model()
    rows, column = setup.heldout()
    data = encode(rows, column, tokenizer, settings)
    callbacks = [_StopAt(stop_at)] if stop_at else None
    train(model, data, build_collator(tokenizer, settings), settings, out, resume_from, callbacks=callbacks)
    return model


def _weights(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """Every tensor of the model's state, each its own copy (tied ones too, which safetensors will not share)."""
    return {key: value.detach().clone().contiguous() for key, value in model.state_dict().items()}


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The largest absolute difference over every tensor of two states (0.0: bit for bit the same)."""
    if a.keys() != b.keys():
        return float("inf")
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _resume(setup: Setup, written: Path, own: Path, out: Path, versions: tuple[str, str]) -> Crossed:
    """Resume the writer's halfway checkpoint here to the end; compare with the writer's whole run, and where they
    differ, tell a resume fault (the two sides' own runs agree) from versions that compute differently."""
    crossing = ("checkpoint", *versions)
    try:
        resumed = _weights(_train(setup, out / "resumed", resume_from=written / "half" / f"checkpoint-{STEPS // 2}"))
    except Exception as err:  # whatever the library raises on a checkpoint it cannot read is the finding
        return Crossed(*crossing, REFUSED, *_refusal(err))
    theirs, mine = load_file(str(written / "whole.safetensors")), load_file(str(own / "whole.safetensors"))
    off, sides = _max_difference(resumed, theirs), _max_difference(mine, theirs)
    if off == 0.0:
        return Crossed(*crossing, WORKS, f"resumed at step {STEPS // 2} to {STEPS}: bit for bit the writer's whole run")
    if sides == 0.0:
        return Crossed(*crossing, BROKEN, f"resumed run diverged from the writer's whole run by {off:.1e}, though "
                     "both sides' own runs are identical")  # fmt: skip
    return Crossed(
        *crossing,
        DIFFERS,
        f"resumed run differs from the writer's by {off:.1e}; the sides' own runs "
        f"differ by {sides:.1e}, so the versions compute differently and bit for bit cannot be asked",
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m mlm_bench.contract.crossing write|read ...`, as upgrade runs it in each side's environment."""
    parser = argparse.ArgumentParser(prog="python -m mlm_bench.contract.crossing")
    parser.add_argument("step", choices=("write", "read"))
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--written", type=Path, help="read: the other side's write folder")
    parser.add_argument("--own", type=Path, help="read: this side's write folder")
    args = parser.parse_args(argv)
    setup = load_setup(args.model, config=args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "write":
        write(setup, args.out)
    else:
        found = [asdict(path) for path in read(setup, args.written, args.own, args.out)]
        (args.out / "crossing.json").write_text(json.dumps(found, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
