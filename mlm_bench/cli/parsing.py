"""Argument parsing for every verb: no abbreviations, every error one line (exit 2), and the run's
settings parser with one option per Settings field."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from transformers import HfArgumentParser

from mlm_bench.config import GROUPS, Settings, preset, settings_file
from mlm_bench.errors import UsageError

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
    """`mlm-bench run`'s parser: one option per field of every settings group (dash and underscore spellings are
    one), and --preset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for action in self._actions:  # HfArgumentParser gives --no_X the help of --X, which says the opposite
            if action.option_strings and action.option_strings[0].startswith("--no_"):
                action.help = f"Set {action.dest} false (the same as --{action.dest} false)."

    @staticmethod
    def _parse_dataclass_field(parser: argparse.ArgumentParser, field: dataclasses.Field) -> None:
        """HfArgumentParser's option for a field, the field's interval moved into its help: HfArgumentParser hands
        all metadata to add_argument, which takes no `interval`."""
        metadata = {key: value for key, value in field.metadata.items() if key != "interval"}
        if field.metadata.get("interval"):
            metadata["help"] = f"{metadata['help']} In {field.metadata['interval']}."
        shown = copy.copy(field)  # HfArgumentParser also rewrites the field's type: leave the dataclass's alone
        shown.metadata = types.MappingProxyType(metadata)
        HfArgumentParser._parse_dataclass_field(parser, shown)


def parse_settings(argv: Sequence[str]) -> tuple[Settings, argparse.Namespace]:
    """Settings from `--preset NAME` plus any field overrides; CLI-only options come back separately."""
    pre = Parser(prog="mlm-bench run", add_help=False)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--config", type=Path, default=None)
    known = pre.parse_known_args(argv)[0]
    from_file = settings_file(known.config) if known.config else {}
    # The flags override the file, the file overrides its preset.
    name = known.preset or from_file.get("preset", "tiny-zh")
    base = {**preset(name).flat(), **from_file, "preset": name}  # preset() refuses an unknown name
    parser = SettingsParser(list(GROUPS.values()), prog="mlm-bench run", description="Run the MLM recipe end to end.")
    parser.add_argument("--preset", help=Settings.__dataclass_fields__["preset"].metadata["help"])
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
        *groups, options, extras = parser.parse_args_into_dataclasses(args=list(argv), return_remaining_strings=True)
        settings = Settings(preset=vars(options).pop("preset"), **dict(zip(GROUPS, groups, strict=True)))
    except (ValueError, TypeError) as err:  # a field's own validation, or a settings file's value of another type
        if isinstance(err, UsageError):
            raise
        raise UsageError(f"{err}: see `mlm-bench run --help` for the fields") from err
    if extras:
        raise unknown_argument(parser, extras)
    return settings, options


def environment_options(parser: argparse.ArgumentParser, where: str) -> None:
    """The options of every verb that builds environments (upgrade, bisect, history): the base's pins, the torch
    that pip installs `where`, and the cache of built environments."""
    parser.add_argument("--base-lock", type=Path, default=None, help="Base from this lock (e.g. locks/tf5.txt) "
                        "instead of this environment frozen.")  # fmt: skip
    parser.add_argument("--torch", default=None, help=f"pip arguments that install torch {where}, e.g. "
                        "'torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu' (default: torch== the "
                        "running version, local part included, from your pip configuration).")  # fmt: skip
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mlm-bench" / "envs",
                        help="Where built environments are kept, one per version set (shared by upgrade, bisect "
                        "and history).")  # fmt: skip
