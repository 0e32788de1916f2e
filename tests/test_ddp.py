"""DDP: `run` under torchrun trains one model across ranks (gloo on CPU) and only rank 0 writes the run."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlm_bench.config import Settings

ROOT = Path(__file__).resolve().parents[1]
RANKS = 2


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes, in name order: equal digests mean bitwise-equal weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def worker(settings_file: Path, output_dir: Path, digest_dir: Path) -> None:
    """One torchrun rank: the real `run`, with each rank's final weights digested beside it."""
    import mlm_bench.runs.run as run_module

    real_train = run_module.train

    def train_and_digest(model, *args, **kwargs):
        summary = real_train(model, *args, **kwargs)
        rank = os.environ["RANK"]
        (digest_dir / f"rank{rank}.json").write_text(
            json.dumps({"digest": weights_digest(model), "world_size": summary.world_size})
        )
        return summary

    run_module.train = train_and_digest
    settings = Settings.from_dict(json.loads(settings_file.read_text()))
    run_module.run(settings, output_dir)


@pytest.mark.slow
def test_two_ranks_agree_on_weights(tmp_path: Path, tiny_settings: Settings, text_file: Path) -> None:
    """Two gloo ranks end with bitwise-equal weights, count both ranks' tokens, and only one results.json exists."""
    settings = tiny_settings.replace(dataset=str(text_file), text_column="text", heldout_fraction=0.2)
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(settings.to_dict()))
    output_dir, digest_dir = tmp_path / "run", tmp_path / "digests"
    digest_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={RANKS}",
        __file__, str(settings_file), str(output_dir), str(digest_dir),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((digest_dir / f"rank{r}.json").read_text()) for r in range(RANKS)]
    assert all(r["world_size"] == RANKS for r in ranks)
    assert ranks[0]["digest"] == ranks[1]["digest"]
    results = json.loads((output_dir / "results.json").read_text())
    assert results["train"]["world_size"] == RANKS
    # Tokens are summed over ranks: both ranks' batches count, so samples/step is RANKS x the per-device batch.
    steps, per_device = results["train"]["steps"], settings.training.batch_size
    seen = results["train"]["tokens_per_second"] * results["train"]["runtime_seconds"] / settings.data.max_length
    assert seen == pytest.approx(steps * per_device * RANKS)


if __name__ == "__main__":
    worker(*(Path(arg) for arg in sys.argv[1:4]))
