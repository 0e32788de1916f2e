"""The accept file: an entry covers one field between two version sets and two values, in either order."""

from __future__ import annotations

from mlm_bench import accepted


def test_an_entry_covers_only_its_field_version_sets_and_values() -> None:
    """The accept file covers a field only between the two version sets and values it names."""
    entry = {"field": "model.initial_loss", "versions": ["a", "b"], "values": [8.0, 8.1], "why": "reviewed"}
    change = accepted.Change("model.initial_loss", 8.0, 8.1)
    assert accepted.is_accepted(change, ("a", "b"), [entry])
    assert accepted.is_accepted(accepted.Change("model.initial_loss", 8.1, 8.0), ("b", "a"), [entry])
    assert not accepted.is_accepted(accepted.Change("model.initial_loss", 8.0, 8.2), ("a", "b"), [entry])
    assert not accepted.is_accepted(accepted.Change("tokenizer.size", 8.0, 8.1), ("a", "b"), [entry])
    assert not accepted.is_accepted(change, ("a", "c"), [entry])


def test_record_adds_each_change_once(tmp_path) -> None:
    path = tmp_path / "accepted.json"
    found = [accepted.Change("tokenizer.size", 10, 11)]
    accepted.record(path, "a", "b", found, "reviewed")
    accepted.record(path, "a", "b", found, "again")
    assert [e["why"] for e in accepted.load(path)] == ["reviewed"]
    assert accepted.is_accepted(found[0], ("a", "b"), accepted.load(path))


def test_field_changes_compare_floats_to_1e5_and_name_absent_fields() -> None:
    changes = accepted.field_changes({"a": 1.0, "b": {"c": 2}}, {"a": 1.0 + 1e-7, "b": {"c": 3}, "d": 1})
    assert [str(c) for c in changes] == ["b.c: 2 -> 3", "d: <absent> -> 1"]
