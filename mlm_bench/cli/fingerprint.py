"""`mlm-bench fingerprint`: record what the installed versions make of fixed inputs; list changes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlm_bench.cli.exits import EXIT_FAILED
from mlm_bench.cli.parsing import Parser
from mlm_bench.errors import UsageError


def cmd_fingerprint(argv: Sequence[str]) -> int:
    parser = Parser(
        prog="mlm-bench fingerprint",
        description="Record what the installed transformers/tokenizers/torch make of fixed inputs, check the "
        "masking contract on them, and list changes against the fingerprints of other versions: exit 1 while a "
        "change is not recorded as reviewed in the accept file (--accept).",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="Fingerprint directory (default: the golden set shipped in "
        "mlm_bench/contract/fingerprints/; messages print it in full)."
    )  # fmt: skip
    parser.add_argument(
        "--accepted", type=Path, default=None, help="Accept file of reviewed changes, read and, with --accept, "
        "written (default: accepted.json in --dir)."
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="Replace a stored fingerprint of these same versions.")
    parser.add_argument(
        "--accept", metavar="WHY", default=None, help="Record every change against other versions as reviewed, "
        "with this reason, in the accept file."
    )  # fmt: skip
    args = parser.parse_args(argv)
    from mlm_bench.contract import fingerprint as fp
    from mlm_bench.contract.masking import ContractViolation

    args.dir = (args.dir or fp.FINGERPRINT_DIR).resolve()  # every message then says where, from any directory
    accept_file = (args.accepted or args.dir / fp.ACCEPTED).resolve()
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
        try:
            print(f"wrote {fp.save(current, args.dir)}")
        except OSError as err:  # e.g. the shipped set inside a read-only site-packages
            raise UsageError(
                f"cannot write the fingerprint of {key} into {args.dir} ({err.strerror}): pass --dir DIR with a "
                f"writable copy of the shipped set (cp -r {fp.FINGERPRINT_DIR} DIR)"
            ) from err
    return _against_others({k: v for k, v in known.items() if k != key}, current, accept_file, args.accept)


def _against_others(others: dict[str, Any], current: dict[str, Any], accept_file: Path, why: str | None) -> int:
    """Print each other version set's changes against `current`, recording them first with `why`; exit 1 while
    one is not in the accept file."""
    from mlm_bench.contract import accepted
    from mlm_bench.contract import fingerprint as fp

    unaccepted, entries = 0, accepted.load(accept_file)
    for other, payload in others.items():
        found = fp.changes(payload, current)
        if why and found:
            print(f"accepted in {fp.accept(accept_file, found, why)}")
            entries = accepted.load(accept_file)
        print(f"against {other}: {f'{len(found)} changed field(s)' if found else accepted.IDENTICAL}")
        for change in found:
            reviewed = accepted.is_accepted(change, entries)
            unaccepted += not reviewed
            print(f"  {change}  [{'accepted' if reviewed else 'NOT ACCEPTED'}]")
    if unaccepted:
        print(
            f"mlm-bench: {unaccepted} change(s) against other versions are not accepted: review them, then record "
            f"them with `mlm-bench fingerprint --accept WHY` (file {accept_file})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0
