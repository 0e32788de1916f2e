"""`mlm-bench fingerprint`: record what the installed versions make of fixed inputs; list changes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

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
    from mlm_bench.contract import accepted
    from mlm_bench.contract import fingerprint as fp
    from mlm_bench.contract.masking import ContractViolation

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
