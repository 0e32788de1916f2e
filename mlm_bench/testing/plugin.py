"""mlm-bench's pytest plugin, registered through the `pytest11` entry point so any pytest in an environment with
mlm-bench installed has it: the options naming the user's own setup (`--mlm-model`, `--mlm-tokenizer`,
`--mlm-config`) and its fixture, the builtin corpus's fixtures, and the breakers.

`pytest --pyargs mlm_bench.contract --mlm-model DIR` runs the model-agnostic contract on DIR (docs/contract.md).
Every heavy import waits for a fixture that needs it: loading the plugin costs any pytest run nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from mlm_bench.contract.setup import Setup

pytest_plugins = ["mlm_bench.testing.fixtures", "mlm_bench.testing.breakers"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlm-bench", "the contract on your own model (pytest --pyargs mlm_bench.contract)")
    group.addoption("--mlm-model", type=Path, default=None, metavar="DIR",
                    help="A masked LM saved by save_pretrained or `mlm-bench run`.")  # fmt: skip
    group.addoption("--mlm-tokenizer", type=Path, default=None, metavar="DIR",
                    help="Its tokenizer, where not in --mlm-model's directory.")  # fmt: skip
    group.addoption("--mlm-config", type=Path, default=None, metavar="FILE",
                    help="The settings it trains with (JSON or YAML, as `mlm-bench run --config` takes; default: "
                    "the results.json of the run that saved it, else the tiny-zh preset).")  # fmt: skip


@pytest.fixture(scope="session")
def mlm_setup(pytestconfig: pytest.Config) -> Setup:
    """The user's model, tokenizer and settings named by --mlm-model (and --mlm-tokenizer, --mlm-config)."""
    from mlm_bench.contract.setup import load_setup
    from mlm_bench.errors import UsageError

    model = pytestconfig.getoption("mlm_model")
    if model is None:
        pytest.fail("no model to check: pass --mlm-model DIR (a directory saved by save_pretrained or by "
                    "`mlm-bench run`)", pytrace=False)  # fmt: skip
    try:
        return load_setup(model, pytestconfig.getoption("mlm_tokenizer"), pytestconfig.getoption("mlm_config"))
    except UsageError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def mlm_tokenizer(mlm_setup: Setup) -> PreTrainedTokenizerBase:
    """The user's tokenizer, loaded as AutoTokenizer loads it."""
    return _loaded(mlm_setup.tokenizer, "tokenizer", mlm_setup.tokenizer_dir)


@pytest.fixture
def mlm_model(mlm_setup: Setup) -> PreTrainedModel:
    """The user's masked LM in eval mode, loaded afresh for each test (a test may change its mode)."""
    return _loaded(mlm_setup.model, "model", mlm_setup.model_dir)


@pytest.fixture(scope="session")
def mlm_heldout(mlm_setup: Setup) -> tuple[datasets.Dataset, str]:
    """Held-out rows of the user's corpus (its settings' dataset and split) and their text column."""
    return mlm_setup.heldout()


def _loaded(load: Callable[[], Any], what: str, directory: Path) -> Any:
    """What `load` returns, or a one-line failure naming the directory and the installed transformers."""
    from importlib.metadata import version

    try:
        return load()
    except Exception as err:  # whatever the library raises is the finding: said in one line, not a traceback
        reason = " ".join(str(err).split())[:400]
        pytest.fail(f"transformers {version('transformers')} cannot load the {what} in {directory}: "
                    f"{type(err).__name__}: {reason}", pytrace=False)  # fmt: skip
