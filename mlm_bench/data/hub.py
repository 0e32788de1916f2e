"""The Hub before any loading: which settings name Hub repos and, when the Hub is out of reach, one message naming
every one that is not cached, with its flag, instead of each library's retries and a message for the first."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import datasets
from datasets.naming import camelcase_to_snakecase
from huggingface_hub import constants, try_to_load_from_cache

from mlm_bench.config import BUILTIN, Settings
from mlm_bench.errors import UsageError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# One TCP connect, no retries: the libraries' own retries took 28 s before naming the first missing piece. (The
# timeout does not bound the DNS lookup.)
CONNECT_TIMEOUT_SECONDS = 3.0
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def is_hub_id(source: str | None) -> bool:
    """True for `org/name` that is not a local path (a path that exists always wins)."""
    if not source or source == BUILTIN or Path(source).expanduser().exists():
        return False
    return bool(HUB_ID.match(source)) and not source.startswith((".", "/", "~"))


def hub_references(settings: Settings) -> dict[str, str]:
    """Flag -> Hub repo for each piece a run would fetch (the tokenizer defaults to the model's)."""
    refs = {"--dataset": settings.data.dataset, "--model_name_or_path": settings.model.model_name_or_path}
    tokenizer = settings.model.tokenizer_name_or_path or settings.model.model_name_or_path
    if tokenizer != settings.model.model_name_or_path:
        refs["--tokenizer_name_or_path"] = tokenizer
    return {flag: repo for flag, repo in refs.items() if is_hub_id(repo)}


def hub_reachable(timeout: float = CONNECT_TIMEOUT_SECONDS) -> bool:
    """Whether the Hub endpoint accepts a TCP connection within `timeout` seconds."""
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def uses_proxy() -> bool:
    """Whether HTTP(S) goes through a proxy, which a direct connect would wrongly call unreachable."""
    return any(os.environ.get(name) for name in PROXY_VARIABLES)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it."""
    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def is_cached(flag: str, repo: str) -> bool:
    """Whether the libraries would find `repo` without the network."""
    if flag == "--dataset":
        namespace, name = repo.split("/", 1)  # datasets names its cache folder org___snake_case_name
        folder = f"{namespace}___{camelcase_to_snakecase(name)}"
        in_datasets_cache = (Path(datasets.config.HF_DATASETS_CACHE) / folder).is_dir()
        return in_datasets_cache or isinstance(try_to_load_from_cache(repo, "README.md", repo_type="dataset"), str)
    filename = "config.json" if flag == "--model_name_or_path" else "tokenizer_config.json"
    return isinstance(try_to_load_from_cache(repo, filename), str)


def check_hub(settings: Settings) -> None:
    """Refuse at once, naming every uncached Hub piece and its flag, when the Hub is offline or out of reach."""
    refs = hub_references(settings)
    if not refs:
        return
    offline = hub_offline()
    if not offline and (uses_proxy() or hub_reachable()):  # through a proxy, only the libraries can tell
        return
    missing = {flag: repo for flag, repo in refs.items() if not is_cached(flag, repo)}
    if not missing:
        return
    why = "HF_HUB_OFFLINE is set" if offline else f"the Hub ({constants.ENDPOINT}) cannot be reached"
    pieces = "; ".join(f"{flag} {repo!r}" for flag, repo in missing.items())
    skip = "" if offline else "; with HF_HUB_OFFLINE=1 this check skips the network"
    raise UsageError(
        f"{why} and these are not in the local cache: {pieces}. Pass local copies instead (a save_to_disk "
        "directory for --dataset, save_pretrained directories for the model and tokenizer), made on a machine "
        f"with network, or connect{skip}"
    )
