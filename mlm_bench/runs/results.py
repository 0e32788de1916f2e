"""Results: versions, device and metrics of a run, written atomically as results.json."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

RESULTS_FILE = "results.json"
PACKAGES = ("torch", "transformers", "datasets", "tokenizers", "accelerate")


def versions() -> dict[str, str]:
    """Python and the versions of every package whose upgrade the suite gates."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def device_info(device: torch.device) -> dict[str, Any]:
    """What the run executed on: accelerator name or CPU model and thread count."""
    info: dict[str, Any] = {
        "type": device.type,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    else:
        info["name"] = platform.processor() or platform.machine()
        info["cpu_count"] = os.cpu_count()
    return info


def file_mode() -> int:
    """The mode a new file gets from open() under this process's umask (0644 under 022): files made by mkstemp,
    or by writers that go through it, are 0600 until set to it. os.umask can only be read by setting it."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to a temp file in the same directory, fsync, then rename: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(strict_json(payload), handle, ensure_ascii=False, indent=2, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def strict_json(value: Any) -> Any:
    """`value` with every NaN or infinity as None: JSON has no such numbers, and strict readers refuse a file that
    writes them (Python's json would write NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(inner) for inner in value]
    return value


def command_line() -> list[str]:
    """The command that started this process, recorded so the run can be repeated."""
    return [Path(sys.argv[0]).name, *sys.argv[1:]]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys, so two records (fingerprints, results) diff key by key."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}
