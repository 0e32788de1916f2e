"""A run killed mid-training resumes to the same result; half-written checkpoints are never trusted."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from transformers.trainer_utils import get_last_checkpoint

from mlm_bench import cli
from mlm_bench.cli import exits
from mlm_bench.config import preset
from mlm_bench.errors import UsageError
from mlm_bench.runs import run as run_module
from mlm_bench.runs.checkpoints import CHECKPOINTS, checkpoints, is_complete, last_complete_checkpoint
from mlm_bench.runs.results import RESULTS_FILE
from mlm_bench.runs.resume import RUN_FILE, claim, preflight, publish, staging_dir
from mlm_bench.testing import faults
from mlm_bench.testing.helpers import error_line, tiny_cli_args

REPO = Path(__file__).resolve().parents[1]
# Short rows for steps 0-5: the run resumes from step 4, inside the short-row phase, and crosses the switch again.
STEPS = {"max_steps": 8, "save_steps": 2, "short_row_fraction": 0.75}
KILL_AT = 6

# Runs the real CLI, SIGKILLing itself while checkpoint-KILL_AT is half-written: weights, optimizer and scheduler
# are on disk, RNG state and trainer_state.json are not -- the worst moment for a kill to land.
KILL_WHILE_SAVING = faults.cli_script(faults.killed_while_saving, KILL_AT)


@pytest.fixture(scope="module")
def text_path(tmp_path_factory: pytest.TempPathFactory, corpus) -> Path:
    """One corpus file for the module: resumed and uninterrupted runs must name the same dataset."""
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    path.write_text("\n".join(corpus.train[corpus.text_column][:300]), encoding="utf-8")
    return path


def _argv(text_path: Path, output_dir: Path, *extra: str, **overrides: object) -> list[str]:
    flags = tiny_cli_args(**{"dataset": text_path, "heldout_fraction": 0.2, **STEPS, **overrides})
    return ["run", *flags, "--output-dir", str(output_dir), *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, text_path: Path) -> Path:
    """An uninterrupted run: the reference a resumed run must reproduce."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert cli.main(_argv(text_path, out)) == 0
    return out


def _results(run_dir: Path) -> dict:
    return json.loads((run_dir / RESULTS_FILE).read_text(encoding="utf-8"))


def _killed_while_saving(text_path: Path, out: Path, *extra: str) -> None:
    """Runs the CLI into `out` with KILL_WHILE_SAVING: SIGKILLed while checkpoint-KILL_AT is half-written."""
    # A file, not a pipe: a killed run's orphaned DataLoader workers hold its pipes open until they notice (~5 s).
    log = out.parent / f"{out.name}-stderr.txt"
    with log.open("w", encoding="utf-8") as stderr:
        killed = subprocess.run(
            [sys.executable, "-c", KILL_WHILE_SAVING, *_argv(text_path, out, *extra)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            timeout=300,
        )
    assert killed.returncode == -signal.SIGKILL, log.read_text(encoding="utf-8")[-2000:]


def _same_weights(run_dir: Path, reference: Path) -> bool:
    weights, expected = load_file(run_dir / "model.safetensors"), load_file(reference / "model.safetensors")
    return weights.keys() == expected.keys() and all((weights[k] == expected[k]).all() for k in expected)


@pytest.mark.slow  # a second process (pyproject: slow tests run on their own)
def test_killed_run_resumes_to_the_uninterrupted_result(finished, text_path, tmp_path, capsys):
    out = tmp_path / "run"
    _killed_while_saving(text_path, out)
    # What the kill left: an unfinished run whose newest checkpoint is half-written.
    assert not (out / RESULTS_FILE).exists() and (out / RUN_FILE).exists()
    newest = out / CHECKPOINTS / f"checkpoint-{KILL_AT}"
    assert newest.is_dir() and not is_complete(newest)
    assert get_last_checkpoint(str(out / CHECKPOINTS)) == str(newest)  # transformers alone would load it
    assert last_complete_checkpoint(out) == out / CHECKPOINTS / f"checkpoint-{KILL_AT - 2}"

    # Neither overwritten nor resumed by accident, nor continued with other settings.
    assert "holds an unfinished run (last complete checkpoint: step 4): pass --resume" in _message(
        _argv(text_path, out), capsys
    )
    assert "started with different settings (learning_rate: 0.003 -> 0.001): resume with the original" in _message(
        _argv(text_path, out, "--resume", learning_rate=0.001), capsys
    )
    capsys.readouterr()
    assert cli.main(_argv(text_path, out, "--resume")) == 0
    assert f"resume: deleted {newest}, which a kill or error left half-written" in capsys.readouterr().out

    resumed, reference = _results(out), _results(finished)
    assert resumed["train"]["resumed_from_step"] == KILL_AT - 2
    assert resumed["train"]["steps"] == reference["train"]["steps"] == STEPS["max_steps"]
    # Bit-identical on CPU: every logged loss, every eval metric, every weight.
    assert resumed["train"]["loss_curve"] == reference["train"]["loss_curve"]
    assert resumed["eval"] == reference["eval"]
    assert _same_weights(out, finished)


WORKERS = ("--trainer_args", "dataloader_num_workers=2")


@pytest.fixture(scope="module")
def killed_with_workers(tmp_path_factory: pytest.TempPathFactory, text_path: Path) -> Path:
    """A run with 2 DataLoader workers, killed mid-epoch while writing checkpoint-6 (checkpoint-4 is complete)."""
    out = tmp_path_factory.mktemp("killed") / "run"
    _killed_while_saving(text_path, out, *WORKERS)
    return out


def resumed_with_workers(killed: Path, text_path: Path, tmp_path: Path, finished: Path) -> tuple[bool, bool]:
    """Resumes a copy of the killed run with its 2 workers: whether its loss curve and its weights are those of
    the uninterrupted run without workers."""
    out = tmp_path / "run"
    shutil.copytree(killed, out)
    assert cli.main(_argv(text_path, out, *WORKERS, "--resume")) == 0
    resumed = _results(out)
    assert resumed["train"]["resumed_from_step"] == KILL_AT - 2
    return resumed["train"]["loss_curve"] == _results(finished)["train"]["loss_curve"], _same_weights(out, finished)


@pytest.mark.slow  # a second process (pyproject: slow tests run on their own)
def test_killed_run_with_dataloader_workers_resumes_to_the_uninterrupted_result(
    killed_with_workers, finished, text_path, tmp_path
):
    """Each batch's masks are seeded by its index in the run, which the workers take from the resume: killed
    mid-epoch and resumed with 2 workers, a run trains bit for bit as the uninterrupted one with none."""
    assert resumed_with_workers(killed_with_workers, text_path, tmp_path, finished) == (True, True)


@pytest.mark.slow  # a second process (pyproject: slow tests run on their own)
def test_worker_resume_check_fails_when_the_resume_offset_is_lost(
    killed_with_workers, finished, text_path, tmp_path, monkeypatch
):
    """Test of the test above: batches seeded from index 0 again after the resume train on other masks."""
    faults.seeded_from_the_start.apply(patch=monkeypatch.setattr)  # a class: planted uncounted
    assert resumed_with_workers(killed_with_workers, text_path, tmp_path, finished) == (False, False)


def test_resume_from_the_last_checkpoint_trains_no_extra_step(finished, text_path, tmp_path):
    """Killed after training but before results.json: Trainer alone would train step max_steps + 1."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    for name in (RESULTS_FILE, "model.safetensors"):
        (out / name).unlink()
    assert cli.main(_argv(text_path, out, "--resume")) == 0
    resumed, reference = _results(out), _results(finished)
    assert resumed["train"]["steps"] == resumed["train"]["resumed_from_step"] == STEPS["max_steps"]
    assert resumed["train"]["loss_curve"] == reference["train"]["loss_curve"]
    assert resumed["eval"] == reference["eval"]


def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(text_path, tmp_path, capsys, monkeypatch):
    faults.loss_turns_nan.apply(5, patch=monkeypatch.setattr)
    out = tmp_path / "run"
    assert cli.main(_argv(text_path, out)) == exits.EXIT_FAILED
    message = error_line(capsys.readouterr().err, "mlm-bench: run failed: ")
    assert message.startswith("training loss is nan at step 5 (learning rate ")
    assert message.endswith(f"the last complete checkpoint (checkpoint-4) is kept in {out}")
    assert [p.name for p in checkpoints(out)] == ["checkpoint-4"]
    assert not (out / RESULTS_FILE).exists()


@pytest.mark.parametrize(
    ("overrides", "bad_step"),
    [
        ({"logging_steps": 100, "save_steps": 4}, 3),  # read at step 4's save, before checkpoint-4 is written
        ({"logging_steps": 100, "save_steps": 0}, 8),  # read at the last step, before results.json
    ],
    ids=["before-a-save", "at-the-last-step"],
)
def test_a_non_finite_loss_between_logs_stops_before_anything_is_written(overrides, bad_step, text_path, tmp_path,
                                                                         capsys, monkeypatch):  # fmt: skip
    """The loss stays on the device between logs: the check where Trainer saves or ends still finds its first step."""
    faults.loss_turns_nan.apply(bad_step, patch=monkeypatch.setattr)
    out = tmp_path / "run"
    assert cli.main(_argv(text_path, out, **overrides)) == exits.EXIT_FAILED
    message = error_line(capsys.readouterr().err, "mlm-bench: run failed: ")
    assert message.startswith(f"training loss is nan at step {bad_step} (learning rate ")
    assert not out.exists()  # no checkpoint was written, so nothing is kept


def test_ctrl_c_keeps_the_checkpoints_for_resume(text_path, tmp_path, capsys, monkeypatch):
    faults.interrupted_after.apply(4, patch=monkeypatch.setattr)  # Ctrl-C at step 5
    out = tmp_path / "run"
    assert cli.main(_argv(text_path, out)) == exits.EXIT_INTERRUPTED
    captured = capsys.readouterr()
    assert f"run stopped (KeyboardInterrupt): the last complete checkpoint (checkpoint-4) is kept in {out}" in (
        captured.out
    )
    assert error_line(captured.err, "mlm-bench: interrupted") == ""
    assert [p.name for p in checkpoints(out)] == ["checkpoint-4"]
    assert last_complete_checkpoint(out) == out / CHECKPOINTS / "checkpoint-4"


# Runs the real CLI, which sends itself SIGTERM (what schedulers and `kill` send) before step 5.
TERMINATE_AT_STEP_5 = faults.cli_script(faults.terminated_after, 4)


@pytest.mark.slow  # a second process (pyproject: slow tests run on their own)
def test_sigterm_stops_like_ctrl_c_exits_143_and_prints_the_resume_command(text_path, tmp_path):
    out = tmp_path / "run"
    argv = _argv(text_path, out)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", TERMINATE_AT_STEP_5, *argv], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == exits.EXIT_TERMINATED, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert f"run stopped (SIGTERM): the last complete checkpoint (checkpoint-4) is kept in {out}" in done.stdout
    command = error_line(done.stderr, "mlm-bench: continue with: ")
    assert shlex.split(command) == ["mlm-bench", *argv, "--resume"]
    assert last_complete_checkpoint(out) == out / CHECKPOINTS / "checkpoint-4"


def test_resume_removes_the_temp_files_a_kill_left(tmp_path):
    run_dir = tmp_path / "run"
    claim(run_dir, {"settings": {}}).release()
    stale = [run_dir / ".results.json.k1ll.tmp", run_dir / f".{RUN_FILE}.k1ll.tmp"]
    for path in stale:
        path.write_text("{", encoding="utf-8")
    resumed = claim(run_dir, {"settings": {}}, resume=True)
    resumed.release()
    assert sorted(resumed.discarded) == sorted(stale)
    assert not any(path.exists() for path in stale)


@pytest.fixture
def no_loading(monkeypatch):
    """Loading data fails the test: a refusal must come before it."""

    def loading(*args, **kwargs):
        raise AssertionError("data was loaded before the output directory was checked")

    monkeypatch.setattr(run_module, "prepare", loading)


def _message(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(argv) == exits.EXIT_USAGE
    return error_line(capsys.readouterr().err, "mlm-bench: error: ")


REFUSALS = {
    "overwrite": ((), {}, "holds a finished run: pass --force to overwrite it, or a new --output-dir"),
    "resume-finished": (("--resume",), {}, "holds a finished run, nothing to resume: drop --resume"),
    "both": (("--resume", "--force"), {}, "--force (start over) and --resume (continue) contradict each other"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_existing_run_is_never_overwritten_or_resumed_wrongly(case, finished, text_path, capsys):
    extra, overrides, expected = REFUSALS[case]
    before = sorted(p.relative_to(finished) for p in finished.rglob("*"))
    assert expected in _message(_argv(text_path, finished, *extra, **overrides), capsys)
    assert sorted(p.relative_to(finished) for p in finished.rglob("*")) == before


@pytest.mark.usefixtures("no_loading")
def test_output_dir_refusals_come_before_any_loading(finished, text_path, tmp_path, capsys, monkeypatch):
    assert "holds a finished run: pass --force" in _message(_argv(text_path, finished), capsys)
    (tmp_path / "file").write_text("", encoding="utf-8")
    under_a_file = tmp_path / "file" / "run"
    assert f"cannot create {under_a_file}: {tmp_path / 'file'} is a file" in _message(
        _argv(text_path, under_a_file), capsys
    )
    # Root may write anywhere, so the kernel's answer for a read-only directory is stood in for.
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != read_only and real_access(path, mode))
    assert f"cannot write to {read_only} (read-only or not permitted): pass a writable --output-dir" in _message(
        _argv(text_path, read_only / "run"), capsys
    )


@pytest.mark.usefixtures("no_loading")
def test_output_dirs_the_os_refuses_are_refused_before_loading(text_path, tmp_path, capsys, monkeypatch):
    """Where os.access says yes but nothing can be made (/proc, even for root), or the name is too long for the
    filesystem: one line and exit 2, before any data is loaded."""

    assert "/proc" in _message(_argv(text_path, Path("/proc/mlm-bench-run")), capsys)
    too_long = tmp_path / ("a" * 300)
    assert f"cannot use {too_long} as the output directory (File name too long): pass another --output-dir" in (
        _message(_argv(text_path, too_long), capsys)
    )


def test_resume_needs_a_run(text_path, tmp_path, capsys):
    out = tmp_path / "nothing"
    assert "holds no run to resume (no readable run.json)" in _message(_argv(text_path, out, "--resume"), capsys)
    assert not out.exists()


def test_a_held_run_directory_is_refused(tmp_path):
    """The lock: a second claim on a directory in use fails at once, and works once the first lets go."""
    held = claim(tmp_path / "run", {"settings": {}})
    with pytest.raises(UsageError, match="another mlm-bench run is writing to"):
        claim(tmp_path / "run", {"settings": {}}, force=True)
    with pytest.raises(UsageError, match="another mlm-bench run is writing to"):
        preflight(tmp_path / "run", force=True)  # before any data is loaded
    held.release()
    claim(tmp_path / "run", {"settings": {}}, force=True).release()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_published_files_get_the_mode_the_umask_gives(tmp_path):
    """safetensors writes the model 0600; published into the run it is as readable as results.json."""
    staging = staging_dir(tmp_path)
    (staging / "model.safetensors").write_bytes(b"weights")
    os.chmod(staging / "model.safetensors", 0o600)
    before = os.umask(0o022)
    try:
        publish(staging, tmp_path)
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == 0o644


def test_preflight_leaves_nothing_behind(tmp_path):
    """Its probe directory and a lock file made only to ask are removed: a refused run leaves the place as it was."""
    empty = tmp_path / "empty"
    empty.mkdir()
    preflight(empty)
    preflight(tmp_path / "not-yet")
    assert list(empty.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["empty"]


def test_a_run_started_with_flat_settings_resumes(tmp_path: Path) -> None:
    """A run.json written before settings had groups (flat, no schema_version) still resumes, and still refuses
    other settings."""
    settings = preset("tiny-zh")
    (tmp_path / RUN_FILE).write_text(json.dumps({"settings": settings.flat()}), encoding="utf-8")
    preflight(tmp_path, resume=True, settings=settings.to_dict())
    with pytest.raises(UsageError, match=re.escape("started with different settings (learning_rate: 0.003 -> 0.001)")):
        preflight(tmp_path, resume=True, settings=settings.replace(learning_rate=0.001).to_dict())
