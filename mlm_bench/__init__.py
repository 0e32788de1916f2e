"""mlm-bench: a reproducibility and benchmark suite for masked-LM pretraining with transformers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlm-bench")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
