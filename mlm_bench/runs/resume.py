"""Resume: run directories that survive a kill -- claimed under a lock, marked by run.json, resumed only from
complete checkpoints (mlm_bench.runs.checkpoints)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from mlm_bench.config import flat_fields
from mlm_bench.errors import UsageError
from mlm_bench.runs.checkpoints import (
    CHECKPOINTS,
    checkpoint_step,
    last_complete_checkpoint,
    remove_incomplete_checkpoints,
)
from mlm_bench.runs.results import RESULTS_FILE, file_mode, write_json_atomic

RUN_FILE = "run.json"  # written when a run starts: marks an mlm-bench run and records what it was started with
LOCK_FILE = ".lock"


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Settings that differ at all: a resume must repeat its run's exactly (accepted.field_changes allows 1e-5)."""
    keys = sorted(set(old) | set(new))
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in keys if old.get(key) != new.get(key)]


@dataclass
class RunDir:
    """A run directory this process holds the lock of; `resume_from` is the checkpoint to continue from."""

    path: Path
    lock: FileLock | None  # None for a non-main DDP rank, which only reads
    resumed: bool
    resume_from: Path | None
    discarded: list[Path]  # half-written checkpoints and temp files found and deleted when resuming

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINTS

    def abandon(self) -> Path | None:
        """After a failure: drop half-written files, keep complete checkpoints; with none, leave nothing behind."""
        remove_incomplete_checkpoints(self.path)
        _remove_staging(self.path)
        kept = last_complete_checkpoint(self.path)
        if kept is None and not self.resumed:
            shutil.rmtree(self.path, ignore_errors=True)
        self.release()
        return kept

    def release(self) -> None:
        """Unlock the directory (the OS also does this when the process dies, so a kill never leaves it locked)."""
        if self.lock is not None:
            self.lock.release()


def _lock(path: Path) -> FileLock:
    lock = FileLock(path / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(
            f"another mlm-bench run is writing to {path}: wait for it to finish, or pass a different --output-dir"
        ) from None
    return lock


def _refuse_existing(path: Path) -> UsageError:
    if (path / RESULTS_FILE).exists():
        return UsageError(f"{path} holds a finished run: pass --force to overwrite it, or a new --output-dir")
    if (path / RUN_FILE).exists():
        last = last_complete_checkpoint(path)
        where = f"last complete checkpoint: step {checkpoint_step(last)}" if last else "no complete checkpoint yet"
        return UsageError(
            f"{path} holds an unfinished run ({where}): pass --resume to continue it, --force to start over, "
            "or a new --output-dir"
        )
    return UsageError(f"{path} exists and is not empty: pass --force to overwrite it, or a new --output-dir")


def _started_record(path: Path) -> dict[str, Any]:
    """What an unfinished run in path was started with; refused when path holds a finished run or none."""
    if (path / RESULTS_FILE).exists():
        raise UsageError(f"{path} holds a finished run, nothing to resume: drop --resume, or pass --force to redo it")
    try:
        return json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(
            f"{path} holds no run to resume (no readable {RUN_FILE}): drop --resume to start a new run there"
        ) from None


def _check_resumable(path: Path, record: dict[str, Any]) -> None:
    started = _started_record(path)
    # Any of these changed mid-run would make results.json describe a run that never happened.
    for key in ("settings", "corpus_fingerprint", "versions"):
        _check_unchanged(path, key, started.get(key), record.get(key))


def _check_unchanged(path: Path, key: str, old: Any, new: Any) -> None:
    if key == "settings" and isinstance(old, dict) and isinstance(new, dict):
        old, new = flat_fields(old), flat_fields(new)  # a run started before settings had groups records them flat
    if old != new:
        changed = _differences(old, new) if isinstance(old, dict) and isinstance(new, dict) else [f"{old} -> {new}"]
        raise UsageError(
            f"{path} was started with different {key} ({'; '.join(changed)}): resume with the original "
            "settings, data and package versions, or start a new run in another --output-dir"
        )


def preflight(path: Path, force: bool = False, resume: bool = False, settings: dict[str, Any] | None = None) -> None:
    """claim()'s refusals that need no data, made before any is loaded, so they come at once rather than after
    the corpus, tokenizer and model have loaded; claim() decides again under the lock. Given the run's settings,
    a resume with other settings is refused here too."""
    if force and resume:
        raise UsageError("--force (start over) and --resume (continue) contradict each other: pass one of them")
    try:
        _check_output_dir(path, force, resume, settings)
    except OSError as err:
        raise _unusable(path, err) from err


def _check_output_dir(path: Path, force: bool, resume: bool, settings: dict[str, Any] | None) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file, not a directory: pass a directory as --output-dir")
    if resume:
        started = _started_record(path)
        if settings is not None:
            _check_unchanged(path, "settings", started.get("settings"), settings)
    elif path.is_dir() and not force and any(p.name != LOCK_FILE for p in path.iterdir()):
        raise _refuse_existing(path)
    nearest = next(p for p in (path, *path.parents) if p.exists())
    if not nearest.is_dir():
        raise UsageError(f"cannot create {path}: {nearest} is a file, not a directory: pass another --output-dir")
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {nearest} (read-only or not permitted): pass a writable --output-dir")
    # os.access answers yes to root on a read-only filesystem or in /proc: creating something is the real test.
    os.rmdir(tempfile.mkdtemp(prefix=".mlm-bench-probe-", dir=nearest))
    if path.is_dir():
        _probe_lock(path)


def _probe_lock(path: Path) -> None:
    """Refuse now if another run holds the directory's lock; a lock file made only to ask is removed again."""
    existed = (path / LOCK_FILE).exists()
    _lock(path).release()
    if not existed:
        (path / LOCK_FILE).unlink(missing_ok=True)


def _unusable(path: Path, err: OSError) -> UsageError:
    reason = err.strerror or type(err).__name__
    return UsageError(f"cannot use {path} as the output directory ({reason}): pass another --output-dir")


def claim(path: Path, record: dict[str, Any], force: bool = False, resume: bool = False) -> RunDir:
    """Lock the run directory and decide: start fresh (empty, or --force), continue (--resume), or refuse."""
    preflight(path, force=force, resume=resume)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unusable(path, err) from err
    lock = _lock(path)
    try:
        if resume:
            _check_resumable(path, record)
            discarded = remove_incomplete_checkpoints(path) + _remove_temp_files(path)
            _remove_staging(path)  # a kill during the final save leaves its staging directory
            return RunDir(path, lock, resumed=True, resume_from=last_complete_checkpoint(path), discarded=discarded)
        contents = [p for p in path.iterdir() if p.name != LOCK_FILE]
        if contents and not force:
            raise _refuse_existing(path)
        for item in contents:
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item)
            else:
                item.unlink()
        write_json_atomic(path / RUN_FILE, record)
    except BaseException:
        lock.release()
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return RunDir(path, lock, resumed=False, resume_from=None, discarded=[])


def _remove_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temp files of atomic writes (results.json, run.json) that a kill cut short."""
    removed = sorted(run_dir.glob(".*.tmp"))
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _remove_staging(run_dir: Path) -> None:
    for leftover in run_dir.glob(".staging-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def staging_dir(run_dir: Path) -> Path:
    """A fresh hidden directory inside the run for files that must appear whole or not at all."""
    staging = run_dir / f".staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def publish(staging: Path, run_dir: Path) -> None:
    """Move each staged file into the run directory with an atomic rename, readable as the umask allows (safetensors
    writes the model 0600), then drop the staging directory."""
    mode = file_mode()
    for item in staging.iterdir():
        if item.is_file():
            os.chmod(item, mode)
        os.replace(item, run_dir / item.name)
    staging.rmdir()


def follow(path: Path, resume: bool) -> RunDir:
    """The run directory as a non-main DDP rank sees it: rank 0 holds the lock and writes; this rank only reads."""
    resume_from = last_complete_checkpoint(path) if resume else None
    return RunDir(path, None, resumed=resume, resume_from=resume_from, discarded=[])
