"""The accept file: an entry covers one field changing between two values, in either direction, whatever the
version sets that show it."""

from __future__ import annotations

import json

import pytest

from mlm_bench.contract import accepted
from mlm_bench.errors import UsageError

ENTRY = {"field": "model.initial_loss", "old": 8.0, "new": 8.1, "why": "reviewed", "first_seen": "b"}


def test_an_entry_covers_its_field_and_values_in_either_direction() -> None:
    assert accepted.is_accepted(accepted.Change("model.initial_loss", 8.0, 8.1), [ENTRY])
    assert accepted.is_accepted(accepted.Change("model.initial_loss", 8.1, 8.0), [ENTRY])
    assert accepted.is_accepted(accepted.Change("model.initial_loss", 8.0, 8.1 * (1 + 1e-7)), [ENTRY])


def test_an_entry_covers_nothing_else() -> None:
    assert not accepted.is_accepted(accepted.Change("model.initial_loss", 8.0, 8.2), [ENTRY])
    assert not accepted.is_accepted(accepted.Change("model.initial_loss", 7.9, 8.1), [ENTRY])
    assert not accepted.is_accepted(accepted.Change("tokenizer.size", 8.0, 8.1), [ENTRY])
    assert not accepted.is_accepted(accepted.Change("model.initial_loss", 8.0, 8.1), [])


def test_record_adds_each_change_once_with_where_it_was_first_seen(tmp_path) -> None:
    path = tmp_path / "accepted.json"
    found = [accepted.Change("tokenizer.size", 10, 11)]
    accepted.record(path, found, "set-b", "reviewed")
    accepted.record(path, [accepted.Change("tokenizer.size", 11, 10)], "set-c", "again")
    assert accepted.load(path) == [
        {"field": "tokenizer.size", "old": 10, "new": 11, "why": "reviewed", "first_seen": "set-b"}
    ]


def test_an_entry_of_another_layout_is_refused_naming_what_it_lacks(tmp_path) -> None:
    path = tmp_path / "accepted.json"
    path.write_text(json.dumps([{"field": "f", "versions": ["a", "b"], "values": [1, 2], "why": "x"}]))
    with pytest.raises(UsageError, match=r"lacks \['first_seen', 'new', 'old'\]"):
        accepted.load(path)


def test_field_changes_compare_floats_to_1e5_and_name_absent_fields() -> None:
    changes = accepted.field_changes({"a": 1.0, "b": {"c": 2}}, {"a": 1.0 + 1e-7, "b": {"c": 3}, "d": 1})
    assert [str(c) for c in changes] == ["b.c: 2 -> 3", "d: <absent> -> 1"]
