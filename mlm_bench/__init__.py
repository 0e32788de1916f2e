"""mlm-bench: a reproducibility and benchmark suite for masked-LM pretraining with transformers.

Folders are layers, data flowing one way: the shared leaves (errors, compat, seeding, config) -> data -> modeling
-> training -> runs -> contract -> gate, with envs beside them and the cli over all. Each folder's docstring says
what it owns and what it may import (tests/test_layers.py holds every import to it).

Shared leaves: errors, compat, seeding, config. May import: errors, compat, seeding, config.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mlm-bench")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
