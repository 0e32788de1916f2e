"""The Hub check: every uncached Hub piece named with its flag, at once, when the Hub is out of reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlm_bench.config import Settings, preset
from mlm_bench.data import hub
from mlm_bench.errors import UsageError


def test_hub_references_are_the_pieces_a_run_would_fetch(tmp_path: Path) -> None:
    seed = preset("seed")
    assert hub.hub_references(seed) == {
        "--dataset": "pleisto/wikipedia-cn-20230720-filtered",
        "--model_name_or_path": "hfl/chinese-macbert-base",  # the tokenizer comes from the same repo
    }
    assert hub.hub_references(seed.replace(tokenizer_name_or_path="org/tok"))["--tokenizer_name_or_path"] == "org/tok"
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "local").mkdir()
    local = Settings().replace(dataset=str(tmp_path / "org" / "local"), model_name_or_path=None)
    assert hub.hub_references(local) == {} and hub.hub_references(preset("tiny-zh")) == {}


def test_out_of_reach_names_every_missing_piece_and_its_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "uses_proxy", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    monkeypatch.setattr(hub, "is_cached", lambda flag, repo: False)
    settings = preset("seed", tokenizer_name_or_path="org/tok")
    with pytest.raises(UsageError) as refused:
        hub.check_hub(settings)
    message = str(refused.value)
    assert message.startswith(f"the Hub ({hub.constants.ENDPOINT}) cannot be reached")
    for flag, repo in hub.hub_references(settings).items():
        assert f"{flag} {repo!r}" in message
    assert "\n" not in message and "HF_HUB_OFFLINE=1" in message


def test_cached_pieces_and_a_reachable_hub_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "hub_offline", lambda: True)
    monkeypatch.setattr(hub, "is_cached", lambda flag, repo: True)
    hub.check_hub(preset("seed"))  # offline, but everything is cached
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    monkeypatch.setattr(hub, "is_cached", lambda flag, repo: False)
    hub.check_hub(preset("seed"))  # online: the libraries fetch them


def test_unreachable_endpoint_is_told_without_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert hub.hub_reachable(timeout=1.0) is False


def test_a_proxy_leaves_reachability_to_the_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)  # a direct connect fails behind a proxy
    monkeypatch.setattr(hub, "is_cached", lambda flag, repo: False)
    for name in hub.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    hub.check_hub(preset("seed"))


def test_dataset_cache_folder_is_the_one_datasets_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub.datasets.config, "HF_DATASETS_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "try_to_load_from_cache", lambda *args, **kwargs: None)
    assert not hub.is_cached("--dataset", "org/SuperGLUE")
    (tmp_path / "org___super_glue").mkdir()
    assert hub.is_cached("--dataset", "org/SuperGLUE")
