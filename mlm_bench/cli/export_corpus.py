"""`mlm-bench export-corpus`: the builtin corpus written with save_to_disk."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlm_bench.cli.parsing import Parser


def cmd_export_corpus(argv: Sequence[str]) -> int:
    parser = Parser(prog="mlm-bench export-corpus", description="Write the builtin corpus with save_to_disk.")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    from mlm_bench.data.corpus import export_corpus

    dataset = export_corpus(args.directory)
    print(f"wrote {len(dataset)} rows (columns {dataset.column_names}) to {args.directory}")
    return 0
