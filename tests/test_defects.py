"""The known-defect registry: version ranges parse and match, every defect names its workaround, lookups fail loudly."""

from __future__ import annotations

import pytest

from mlm_bench.contract import defects


@pytest.mark.parametrize("defect", defects.DEFECTS, ids=lambda d: d.key)
def test_every_defect_says_what_breaks_and_how_it_is_avoided(defect: defects.Defect) -> None:
    assert defect.breaks and defect.workaround and defect.package
    assert defect.affects({defect.package: "4.57.6"}) or defect.affects({defect.package: "5.24.0"})


def test_defects_follow_the_versions_they_were_seen_on() -> None:
    old, new = {"transformers": "4.57.6"}, {"transformers": "5.24.0"}
    assert [d.key for d in defects.active(old)] == ["collator-seed-zero"]
    assert [d.key for d in defects.active(new)] == ["bert-mlm-ga-loss"]
    assert defects.active({"transformers": "not installed"}) == []


def test_an_unknown_defect_is_refused() -> None:
    with pytest.raises(KeyError, match="registered are"):
        defects.lookup("no-such-defect")
