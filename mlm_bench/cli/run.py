"""`mlm-bench run`: train, evaluate and probe one preset into a run directory, and print its summary."""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlm_bench.cli.parsing import parse_settings
from mlm_bench.config import Settings
from mlm_bench.errors import Interrupted
from mlm_bench.runs.stop import sigterm_as_interrupt
from mlm_bench.runs.summary import summary


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
        print(summary(results, output_dir))
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
