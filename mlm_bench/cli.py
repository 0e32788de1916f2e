"""The `mlm-bench` command: thin parsing over the library's verbs; bad input exits 2 with one clear line."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import logging
import math
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from transformers import HfArgumentParser

from mlm_bench.config import RANGES, Settings, preset, settings_file
from mlm_bench.errors import Interrupted, RunError, Terminated, UsageError
from mlm_bench.stop import sigterm_as_interrupt

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C
EXIT_TERMINATED = 143  # and for SIGTERM
# Spellings users bring from Trainer and run_mlm.py, and ours for them (closeness alone sends --lr to
# --lr_scheduler_type and --output_dir nowhere near --output-dir's meaning).
KNOWN_SPELLINGS = {
    "--output_dir": "--output-dir",
    "--overwrite_output_dir": "--force",
    "--resume_from_checkpoint": "--resume",
    "--lr": "--learning_rate",
    "--per_device_train_batch_size": "--batch_size",
    "--train_batch_size": "--batch_size",
    "--epochs": "--num_train_epochs",
    "--model_name": "--model_name_or_path",
    "--tokenizer_name": "--tokenizer_name_or_path",
    "--dataset_name": "--dataset",
    "--train_file": "--dataset",
}


def unknown_argument(parser: argparse.ArgumentParser, extras: Sequence[str]) -> UsageError:
    """One line for arguments no option takes: the first unknown option and the option meant, if one is close."""
    word = next((e for e in extras if e.startswith("-")), extras[0])
    if not word.startswith("-"):
        return UsageError(f"unexpected argument {word!r}: `{parser.prog} --help` lists what it takes")
    name = word.split("=", 1)[0]
    canonical = {alias: action.option_strings[0] for action in parser._actions for alias in action.option_strings}
    prefixed = {canonical[alias] for alias in canonical if alias.startswith(name)}  # argparse would have guessed
    close = difflib.get_close_matches(name, list(canonical), n=1, cutoff=0.75)
    meant = KNOWN_SPELLINGS.get(name) if KNOWN_SPELLINGS.get(name) in canonical else None
    meant = meant or (prefixed.pop() if len(prefixed) == 1 else None) or (canonical[close[0]] if close else None)
    fix = f"did you mean {meant}?" if meant else f"`{parser.prog} --help` lists the options"
    return UsageError(f"unknown option {name}: {fix}")


class _OneLineErrors:
    """argparse with no prefix abbreviations (--max-step is not --max_steps) and every error one line, exit 2."""

    prog: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (`{self.prog} --help` lists the options)")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            raise unknown_argument(self, extras)
        return parsed


class Parser(_OneLineErrors, argparse.ArgumentParser):
    """The parser of every subcommand."""


class SettingsParser(_OneLineErrors, HfArgumentParser):
    """`mlm-bench run`'s parser: one option per Settings field (its dash and underscore spellings are one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        intervals = {name: interval for interval, names in RANGES.items() for name in names.split()}
        for action in self._actions:  # HfArgumentParser gives --no_X the help of --X, which says the opposite
            if action.option_strings and action.option_strings[0].startswith("--no_"):
                action.help = f"Set {action.dest} false (the same as --{action.dest} false)."
            elif action.dest in intervals:
                action.help = f"{action.help} In {intervals[action.dest]}."


def parse_settings(argv: Sequence[str]) -> tuple[Settings, argparse.Namespace]:
    """Settings from `--preset NAME` plus any field overrides; CLI-only options come back separately."""
    pre = Parser(prog="mlm-bench run", add_help=False)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--config", type=Path, default=None)
    known = pre.parse_known_args(argv)[0]
    from_file = settings_file(known.config) if known.config else {}
    # The flags override the file, the file overrides its preset.
    name = known.preset or from_file.get("preset", "tiny-zh")
    base = {**preset(name).to_dict(), **from_file, "preset": name}  # preset() refuses an unknown name
    parser = SettingsParser(Settings, prog="mlm-bench run", description="Run the MLM recipe end to end.")
    parser.add_argument(
        "--config", type=Path, default=None, help="JSON or YAML file of settings fields (or a run's run.json): "
        "its preset and fields, overridden by the flags given."
    )  # fmt: skip
    parser.add_argument("--output-dir", type=Path, default=None, help="Run directory (default: runs/<preset>).")
    parser.add_argument("--force", action="store_true", help="Overwrite an existing run directory.")
    parser.add_argument(
        "--resume", action="store_true", help="Continue the unfinished run in --output-dir from its last checkpoint."
    )
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q", "--quiet", action="store_true", help="No progress lines of mlm-bench or datasets, no transformers "
        "warnings: Trainer's loss lines and the final report remain."
    )  # fmt: skip
    loudness.add_argument("-v", "--verbose", action="store_true", help="Also transformers' info messages.")
    parser.set_defaults(**base)
    try:
        settings, options, extras = parser.parse_args_into_dataclasses(args=list(argv), return_remaining_strings=True)
    except (ValueError, TypeError) as err:  # a field's own validation, or a settings file's value of another type
        if isinstance(err, UsageError):
            raise
        raise UsageError(f"{err}: see `mlm-bench run --help` for the fields") from err
    if extras:
        raise unknown_argument(parser, extras)
    return settings, options


def cmd_run(argv: Sequence[str]) -> int:
    settings, options = parse_settings(argv)
    with _logging_at(logging.WARNING if options.quiet else logging.DEBUG if options.verbose else logging.INFO):
        return _run_command(argv, settings, options)


def _run_command(argv: Sequence[str], settings: Settings, options: argparse.Namespace) -> int:
    from mlm_bench.hub import check_hub

    check_hub(settings)  # before the heavy imports below: an offline refusal in a second, not four
    from mlm_bench.run import is_main_process, run  # heavy imports only once the arguments are known to be good

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
            "predicts no better than token frequencies (train longer, or see the README's context ablation)"
        )
    return (
        f"context gain {gain:+.3f} {spread} nats over {where} (model {at_mask['loss']:.3f} vs unigram "
        f"{at_mask['unigram_loss']:.3f}), top-1 accuracy at [MASK] {at_mask['accuracy']:.3f}"
    )


def cmd_export_corpus(argv: Sequence[str]) -> int:
    parser = Parser(prog="mlm-bench export-corpus", description="Write the builtin corpus with save_to_disk.")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    from mlm_bench.corpus import export_corpus

    dataset = export_corpus(args.directory)
    print(f"wrote {len(dataset)} rows (columns {dataset.column_names}) to {args.directory}")
    return 0


def cmd_fingerprint(argv: Sequence[str]) -> int:
    parser = Parser(
        prog="mlm-bench fingerprint",
        description="Record what the installed transformers/tokenizers/torch make of fixed inputs, check the "
        "masking contract on them, and list changes against the fingerprints of other versions: exit 1 while a "
        "change is not recorded as reviewed in the accept file (--accept).",
    )
    parser.add_argument(
        "--dir", type=Path, default=Path("results") / "fingerprints", help="Fingerprint directory (default: "
        "results/fingerprints under the current directory; messages print it in full)."
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="Replace a stored fingerprint of these same versions.")
    parser.add_argument(
        "--accept", metavar="WHY", default=None, help="Record every change against other versions as reviewed, "
        "with this reason, in the accept file."
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.dir = args.dir.resolve()  # every message then says where, whatever directory it ran from
    from mlm_bench import accepted
    from mlm_bench import fingerprint as fp
    from mlm_bench.contract import ContractViolation

    key = fp.version_key()
    try:
        current = fp.fingerprint(*fp.fingerprint_inputs())
    except ContractViolation as err:
        print(f"mlm-bench: masking contract violated on {key}: {err}", file=sys.stderr)
        return 1
    known = fp.stored(args.dir) if args.dir.is_dir() else {}
    if key in known and not args.force:
        changes = fp.diff(known[key], current)
        if changes:
            raise UsageError(
                f"{key} no longer reproduces its stored fingerprint ({'; '.join(changes)}): find out why, or pass "
                "--force to replace it"
            )
        print(f"{key}: matches {args.dir / key}.json")
    else:
        print(f"wrote {fp.save(current, args.dir)}")
    unaccepted = 0
    for other, payload in known.items():
        if other == key:
            continue
        found = fp.changes(payload, current)
        if args.accept and found:
            print(f"accepted in {fp.accept(args.dir, found, args.accept)}")
        entries = accepted.load(args.dir / fp.ACCEPTED)
        print(f"against {other}: {f'{len(found)} changed field(s)' if found else accepted.IDENTICAL}")
        for change in found:
            reviewed = accepted.is_accepted(change, entries)
            unaccepted += not reviewed
            print(f"  {change}  [{'accepted' if reviewed else 'NOT ACCEPTED'}]")
    if unaccepted:
        print(
            f"mlm-bench: {unaccepted} change(s) against other versions are not accepted: review them, then record "
            f"them with `mlm-bench fingerprint --accept WHY` (file {args.dir / fp.ACCEPTED})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def cmd_lock(argv: Sequence[str]) -> int:
    parser = Parser(
        prog="mlm-bench lock",
        description="Run `pytest tests/` on the newest versions each tox line allows, in a fresh environment under "
        "--work, and list the pins that moved against the committed lock (locks/LINE.txt). With --refresh, write "
        "a line's lock only where the suite passed. Needs uv (pip install 'mlm-bench[envs]') and a checkout. Exit "
        "0: passed on every line; 1: failed on one (its lock unchanged); 2: bad input.",
    )
    from mlm_bench.envs import lock

    parser.add_argument("--line", nargs="+", choices=list(lock.LINES), default=list(lock.LINES), help="Tox lines.")
    parser.add_argument("--refresh", action="store_true", help="Write each line's lock where the suite passed.")
    parser.add_argument(
        "--torch", default=None, help="torch requirement installed first (default: the installed torch's release, "
        "e.g. torch==2.13.0, which pip takes from the local CPU wheel on our machines)."
    )  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("runs") / "locks", help="Candidate locks and environments.")
    args = parser.parse_args(argv)
    from importlib import metadata

    root = lock.checkout(Path.cwd().resolve())
    torch_spec = args.torch or f"torch=={metadata.version('torch').split('+')[0]}"
    failed = [line for line in args.line if not lock.verify(root, line, root / args.work / line, torch_spec,
                                                            args.refresh).passed]  # fmt: skip
    if failed:
        kept = "; its lock is unchanged" if args.refresh else ""
        print(f"mlm-bench: the suite failed on the newest versions of {', '.join(failed)}{kept}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _gate_parser() -> Parser:
    """The gate command's options, with the gate's own thresholds as defaults."""
    from mlm_bench import gate, gate_inputs

    defaults = gate.Thresholds()
    parser = Parser(
        prog="mlm-bench gate",
        description="Compare two `pytest benchmarks/ --benchmark-json` files (old, new environment). "
        "Exit 0: no regression; 1: regression; 2: unusable input; 3 (with --fail-inconclusive): no regression, but "
        "a speed change too noisy to call.",
    )
    parser.add_argument("base", type=Path, help="Benchmark JSON of the old environment.")
    parser.add_argument("new", type=Path, help="Benchmark JSON of the new environment.")
    parser.add_argument("--stat", choices=gate_inputs.STATS, default=defaults.stat, help="Timing statistic compared.")
    parser.add_argument(
        "--threshold", type=float, default=defaults.slowdown, help="Slowdown that counts (0.05 = 5%% more time)."
    )
    parser.add_argument(
        "--confidence", type=float, default=defaults.confidence, help="Confidence of the change's interval."
    )
    parser.add_argument(
        "--min-rounds", type=int, default=defaults.min_rounds, help="Gate speed only with at least this many rounds."
    )
    parser.add_argument(
        "--fail-inconclusive", action="store_true", help="Exit 3 when nothing regressed but a speed change is too "
        "noisy to call."
    )  # fmt: skip
    parser.add_argument("--loss-tolerance", type=float, default=defaults.loss_rtol, help="Relative loss tolerance.")
    parser.add_argument(
        "--metric-tolerance", type=float, default=defaults.metric_atol, help="Absolute metric tolerance."
    )
    parser.add_argument(
        "--gain-tolerance", type=float, default=defaults.gain_atol, help="Absolute context-gain tolerance (nats)."
    )
    parser.add_argument("--fingerprints", nargs=2, type=Path, metavar=("BASE", "NEW"), help="Fingerprint JSONs.")
    parser.add_argument(
        "--accepted", type=Path, default=None,
        help="Accept file of reviewed fingerprint changes (results/fingerprints/accepted.json); without it every "
        "fingerprint change is a regression.",
    )  # fmt: skip
    parser.add_argument("--junit", nargs=2, type=Path, metavar=("BASE", "NEW"), help="Contract-test junit XMLs.")
    parser.add_argument("--tests-exit-code", type=int, default=None, help="pytest exit code of the new env's tests.")
    parser.add_argument("--report", type=Path, default=None, help="Write report.md and PNG plots to this directory.")
    return parser


def cmd_gate(argv: Sequence[str]) -> int:
    from mlm_bench import accepted, gate, gate_inputs, gate_report

    args = _gate_parser().parse_args(argv)
    thresholds = gate.Thresholds(
        slowdown=args.threshold,
        stat=args.stat,
        confidence=args.confidence,
        min_rounds=args.min_rounds,
        loss_rtol=args.loss_tolerance,
        metric_atol=args.metric_tolerance,
        gain_atol=args.gain_tolerance,
    )
    fingerprints = None
    if args.fingerprints:
        fingerprints = (
            gate_inputs.load_fingerprint(args.fingerprints[0]),
            gate_inputs.load_fingerprint(args.fingerprints[1]),
        )
    junit = (
        []
        if not args.junit
        else [(s, gate_inputs.junit_outcome(p)) for s, p in zip(("base", "new"), args.junit, strict=True)]
    )
    entries = accepted.load(args.accepted) if args.accepted else []
    result = gate.compare(
        gate_inputs.load_run(args.base),
        gate_inputs.load_run(args.new),
        thresholds,
        fingerprints,
        accepted_entries=entries,
        junit=junit,
        tests_exit_code=args.tests_exit_code,
        fail_inconclusive=args.fail_inconclusive,
    )
    print(gate_report.render_markdown(result))
    if args.report:
        written = gate_report.write_report(result, args.report)
        print("report: " + ", ".join(str(p) for p in written))
    return result.exit_code


COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "run": (cmd_run, "train, evaluate and probe one preset; writes a run directory"),
    "export-corpus": (cmd_export_corpus, "write the builtin corpus as a datasets save_to_disk directory"),
    "fingerprint": (cmd_fingerprint, "record what these library versions do to fixed inputs; list changes"),
    "gate": (cmd_gate, "compare two benchmark JSONs (old vs new environment); exit 1 on a regression"),
    "lock": (cmd_lock, "run the tests on the newest releases each line allows; --refresh moves the locks"),
}


def usage() -> str:
    rows = "\n".join(f"  {name:<15} {text}" for name, (_, text) in COMMANDS.items())
    return (
        f"usage: mlm-bench COMMAND [ARGS]\n\ncommands:\n{rows}\n\n`mlm-bench COMMAND --help` lists a command's options."
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(usage())
        return 0 if args else EXIT_USAGE
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"mlm-bench: error: unknown command {args[0]!r}: choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return command[0](args[1:])
    except UsageError as err:
        print(f"mlm-bench: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as err:
        print(f"mlm-bench: run failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as stop:
        if isinstance(stop, Terminated) or isinstance(stop.__cause__, Terminated):
            print("mlm-bench: terminated (SIGTERM)", file=sys.stderr)
            return EXIT_TERMINATED
        print("mlm-bench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
