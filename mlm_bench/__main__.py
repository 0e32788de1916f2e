"""`python -m mlm_bench`: the mlm-bench command."""

import sys

from mlm_bench.cli import main

sys.exit(main())
