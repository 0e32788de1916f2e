"""The `mlm-bench` command: one module per verb (run, export_corpus, fingerprint, gate, lock) over shared parsing
(parsing) and exit codes (exits); main dispatches. Thin: what a verb computes lives in the layers below.

May import: anything.
"""

from mlm_bench.cli.main import main

__all__ = ["main"]
