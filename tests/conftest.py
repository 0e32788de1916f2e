"""This suite's own policy: hypothesis profiles, one torch thread, and what every test must leave as it found it.
The shared fixtures, helpers and breakers live in mlm_bench.testing (loaded with -p, pyproject addopts)."""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, settings

from mlm_bench.compat import BERT_HAS_FLEX_ATTENTION

# torch calls have no stable per-example time, so no deadline; `ci` is derandomized so CI is repeatable.
settings.register_profile(
    "ci", max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP's spinning threads
# made a 4-step run ~10x slower (12 s instead of 1.2 s wall). Subprocesses inherit OMP_NUM_THREADS, so a
# run in a subprocess computes in the same order as one in the test process.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(autouse=True)
def _environment_restored():
    """TrainingArguments(torch_compile=True) writes ACCELERATE_DYNAMO_* into os.environ (4.57 and 5.x), after which
    every Trainer in the process compiles its model: each test leaves the environment as it found it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _earlier_objects_frozen():
    """accelerate runs a full gc.collect whenever a Trainer starts training; in a worker holding every earlier
    test's objects that took ~0.25 s, 71 times a suite (18 s of CPU, measured). Frozen before each test, the
    collector scans only what the test itself made."""
    gc.freeze()
    yield


@pytest.fixture(autouse=True)
def _flex_attention_uncompiled(monkeypatch) -> None:
    """FlexAttention's padding mask and kernel as torch runs them uncompiled: transformers compiles both on first
    use, which on CPU is a C++ build of ~14 s whenever inductor's cache is cold (every fresh CI venv). The masks
    are the same; the compiled kernels run in the GPU check (scripts/gpu_check.sh)."""
    if not BERT_HAS_FLEX_ATTENTION:
        return
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    from transformers import masking_utils
    from transformers.integrations import flex_attention as integration

    def uncompiled_mask(*args: Any, _compile: bool = False, **kwargs: Any) -> Any:
        return create_block_mask(*args, **kwargs)

    # Internals of transformers: a version without them only makes these tests slower, never fail.
    if hasattr(masking_utils, "create_block_mask"):
        monkeypatch.setattr(masking_utils, "create_block_mask", uncompiled_mask)
    if hasattr(integration, "WrappedFlexAttention"):
        monkeypatch.setattr(integration.WrappedFlexAttention, "__call__", lambda self: flex_attention)
