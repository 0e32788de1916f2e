"""Version fingerprints: the same versions reproduce theirs exactly; changes against other versions fail unless a
reviewed entry of the accept file covers them."""

from __future__ import annotations

import itertools
import json

import pytest

from mlm_bench.cli import main
from mlm_bench.contract import accepted
from mlm_bench.contract import fingerprint as fp
from mlm_bench.testing import faults

FINGERPRINTS = fp.FINGERPRINT_DIR


@pytest.fixture(scope="module")
def current(tokenizer, heldout_rows, wwm_rows, tiny_settings):
    """The running versions' fingerprint, computed from the suite's own fixtures."""
    ours, theirs = tiny_settings.flat(), fp.SETTINGS.flat()
    differing = [f for f in fp.INPUT_FIELDS if ours[f] != theirs[f]]
    assert not differing, f"conftest's tiny settings and fingerprint.SETTINGS differ in {differing}"
    return fp.fingerprint(tokenizer, heldout_rows, wwm_rows)


def test_fingerprint_reproduces_for_these_versions(current):
    """The running (transformers, tokenizers, torch) reproduce their stored fingerprint (floats to 1e-5); a version
    set with none stored is a skip whose reason the summary shows (pyproject's -rs), never a silent pass."""
    path = FINGERPRINTS / f"{fp.version_key()}.json"
    if not path.exists():
        pytest.skip(
            f"no fingerprint stored for these versions ({fp.version_key()}): record one with `mlm-bench fingerprint`"
        )
    changes = fp.diff(fp.load(path), current)
    assert not changes, f"same versions, different behaviour: {changes}"


def test_changes_against_other_versions_are_accepted(current):
    """Every stored fingerprint has the current layout, and every field that differs from another version set is
    a change the accept file names; an unreviewed change fails (record it with `mlm-bench fingerprint --accept WHY`)."""
    entries = accepted.load(FINGERPRINTS / fp.ACCEPTED)
    others = {k: v for k, v in fp.stored(FINGERPRINTS).items() if k != fp.version_key()}
    assert others, f"no other version set's fingerprint in {FINGERPRINTS} to compare with"
    for key, payload in others.items():
        assert sorted(payload) == sorted(current), f"{key}.json has sections {sorted(payload)}"
        unreviewed = [str(c) for c in fp.changes(payload, current) if not accepted.is_accepted(c, entries)]
        assert not unreviewed, f"changes against {key} not in {fp.ACCEPTED}: {unreviewed}"


def test_each_reviewed_change_is_one_entry_accepted_between_every_stored_pair():
    """The stored fingerprints differ pairwise only by reviewed changes, and no two entries name the same change."""
    entries = accepted.load(FINGERPRINTS / fp.ACCEPTED)
    stored = fp.stored(FINGERPRINTS)
    unreviewed = {
        (a, b): [str(c) for c in fp.changes(stored[a], stored[b]) if not accepted.is_accepted(c, entries)]
        for a, b in itertools.combinations(stored, 2)
    }
    assert not {pair: found for pair, found in unreviewed.items() if found}
    for i, entry in enumerate(entries):
        change = accepted.Change(entry["field"], entry["old"], entry["new"])
        assert not accepted.is_accepted(change, entries[:i]), f"{change} is accepted twice"


def test_diff_names_changed_fields(current):
    """diff reports a changed id list and a changed loss by field; float noise below 1e-5 and versions are not."""
    changed = json.loads(json.dumps(current))
    changed["tokenizer"]["ids"][fp.TEXTS[0]] = [0]
    changed["model"]["initial_loss"] *= 1.001
    changed["versions"]["torch"] = "0"
    assert [line.split(":")[0] for line in fp.diff(current, changed)] == [
        "model.initial_loss",
        f"tokenizer.ids.{fp.TEXTS[0]}",
    ]
    changed = json.loads(json.dumps(current))
    changed["model"]["initial_loss"] *= 1 + 1e-7
    assert fp.diff(current, changed) == []


@pytest.fixture
def fixture_inputs(monkeypatch, tokenizer, heldout_rows, wwm_rows):
    """`mlm-bench fingerprint` fed the suite's fixtures instead of rebuilding corpus and tokenizer."""
    monkeypatch.setattr(fp, "fingerprint_inputs", lambda: (tokenizer, heldout_rows, wwm_rows))


@pytest.mark.usefixtures("fixture_inputs")
def test_cli_fails_on_an_unaccepted_change_until_it_is_accepted(tmp_path, capsys, current):
    """Against another version set's fingerprint, a changed field exits 1 until `--accept WHY` records it."""
    other = json.loads(json.dumps(current))
    other["model"]["initial_loss"] += 0.5
    (tmp_path / "transformers-0.0_tokenizers-0.0_torch-0.0.json").write_text(json.dumps(other), encoding="utf-8")
    assert main(["fingerprint", "--dir", str(tmp_path)]) == 1
    assert "NOT ACCEPTED" in capsys.readouterr().out
    assert main(["fingerprint", "--dir", str(tmp_path), "--accept", "a test change"]) == 0
    assert main(["fingerprint", "--dir", str(tmp_path)]) == 0
    assert "[accepted]" in capsys.readouterr().out
    (entry,) = accepted.load(tmp_path / fp.ACCEPTED)
    assert (entry["why"], entry["first_seen"]) == ("a test change", fp.version_key())
    (tmp_path / "transformers-9.9_tokenizers-9.9_torch-9.9.json").write_text(json.dumps(other), encoding="utf-8")
    assert main(["fingerprint", "--dir", str(tmp_path)]) == 0  # another version set showing the same change
    assert len(accepted.load(tmp_path / fp.ACCEPTED)) == 1


@pytest.mark.usefixtures("fixture_inputs")
def test_cli_says_when_fingerprints_are_identical(tmp_path, capsys, current):
    (tmp_path / "transformers-0.0_tokenizers-0.0_torch-0.0.json").write_text(json.dumps(current), encoding="utf-8")
    assert main(["fingerprint", "--dir", str(tmp_path)]) == 0
    assert f"against transformers-0.0_tokenizers-0.0_torch-0.0: {accepted.IDENTICAL}" in capsys.readouterr().out


@pytest.mark.usefixtures("fixture_inputs")
def test_cli_writes_then_matches_then_refuses_a_change(tmp_path, capsys):
    """The command writes the file, then confirms a match, then refuses (exit 2) a stored file it no longer matches."""
    assert main(["fingerprint", "--dir", str(tmp_path)]) == 0
    path = tmp_path / f"{fp.version_key()}.json"
    assert f"wrote {path.resolve()}" in capsys.readouterr().out  # where it wrote, in full
    assert fp.load(path)["versions"]["transformers"] in fp.version_key()
    assert main(["fingerprint", "--dir", str(tmp_path)]) == 0
    assert "matches" in capsys.readouterr().out
    stored = fp.load(path)
    stored["collator"]["sha256"] = "0" * 16
    path.write_text(json.dumps(stored), encoding="utf-8")
    assert main(["fingerprint", "--dir", str(tmp_path)]) == 2
    assert "collator.sha256" in capsys.readouterr().err


@pytest.mark.usefixtures("fixture_inputs")
def test_cli_fails_on_a_contract_violation(tmp_path, capsys, monkeypatch):
    """A collator that breaks the contract makes the command fail (exit 1), whatever the versions."""
    faults.attention_unmasked.apply(patch=monkeypatch.setattr)
    assert main(["fingerprint", "--dir", str(tmp_path)]) == 1
    assert "masking contract violated" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.usefixtures("fixture_inputs")
def test_a_stray_assertion_is_not_reported_as_a_contract_violation(tmp_path, monkeypatch):
    """An assert failing inside a library is a bug to see whole, not a masking contract violation."""
    faults.library_assertion.apply(patch=monkeypatch.setattr)
    with pytest.raises(AssertionError, match="inside a library"):
        main(["fingerprint", "--dir", str(tmp_path)])


@pytest.mark.usefixtures("fixture_inputs")
def test_cli_names_the_fix_when_the_directory_cannot_be_written(tmp_path, capsys, monkeypatch):
    """A new version set's fingerprint that cannot be written (the shipped set in a read-only site-packages) is a
    one-line refusal naming --dir, not a traceback."""
    faults.fingerprint_unwritable.apply(patch=monkeypatch.setattr)
    assert main(["fingerprint", "--dir", str(tmp_path)]) == 2
    assert "Permission denied): pass --dir DIR with a writable copy of the shipped set" in capsys.readouterr().err
