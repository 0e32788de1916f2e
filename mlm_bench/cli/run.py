"""`mlm-bench run`: train, evaluate and probe one preset into a run directory, and print its summary."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mlm_bench.cli.parsing import parse_settings
from mlm_bench.config import Settings
from mlm_bench.errors import Interrupted
from mlm_bench.runs.stop import sigterm_as_interrupt


def cmd_run(argv: Sequence[str]) -> int:
    settings, options = parse_settings(argv)
    with _logging_at(logging.WARNING if options.quiet else logging.DEBUG if options.verbose else logging.INFO):
        return _run_command(argv, settings, options)


def _run_command(argv: Sequence[str], settings: Settings, options: argparse.Namespace) -> int:
    from mlm_bench.data.hub import check_hub

    check_hub(settings)  # before the heavy imports below: an offline refusal in a second, not four
    from mlm_bench.runs.run import is_main_process, run  # heavy imports only once the arguments are known to be good

    output_dir = options.output_dir or Path("runs") / settings.preset
    try:
        with sigterm_as_interrupt():
            results = run(settings, output_dir, force=options.force, resume=options.resume, hub_checked=True)
    except Interrupted as stop:  # stopped after claiming the directory: its checkpoints are this run's
        if is_main_process(settings) and stop.kept is not None:
            print(f"mlm-bench: continue with: {resume_command(argv, output_dir)}", file=sys.stderr)
        raise
    if is_main_process(settings):
        print(report(results, output_dir))
    return 0


@contextlib.contextmanager
def _logging_at(level: int) -> Iterator[None]:
    """mlm-bench's progress lines on stdout at `level`, transformers' and datasets' messages following -q and -v;
    all as they were afterwards, so a later call in the same process starts from the library defaults."""
    import datasets  # only a run needs them, and only once its arguments are known to be good
    import transformers

    package = logging.getLogger("mlm_bench")
    saved = (package.handlers[:], package.level, package.propagate, transformers.logging.get_verbosity())
    bars = datasets.is_progress_bar_enabled()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package.handlers[:], package.propagate = [handler], False
    package.setLevel(level)
    if level == logging.WARNING:
        transformers.logging.set_verbosity_error()
        datasets.disable_progress_bars()
    elif level == logging.DEBUG:
        transformers.logging.set_verbosity_info()
    try:
        yield
    finally:
        package.handlers[:], package.propagate = saved[0], saved[2]
        package.setLevel(saved[1])
        transformers.logging.set_verbosity(saved[3])
        (datasets.enable_progress_bars if bars else datasets.disable_progress_bars)()


def resume_command(argv: Sequence[str], output_dir: Path) -> str:
    """The command line that continues this run: its own arguments, --resume instead of --force."""
    args = [arg for arg in argv if arg != "--force"]
    if not any(arg == "--output-dir" or arg.startswith("--output-dir=") for arg in args):
        args += ["--output-dir", str(output_dir)]
    if "--resume" not in args:
        args.append("--resume")
    return shlex.join(["mlm-bench", "run", *args])


def report(results: dict[str, Any], output_dir: Path) -> str:
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
