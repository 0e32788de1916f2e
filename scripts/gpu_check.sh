#!/usr/bin/env bash
# The GPU check of issue 13 in one call on a lent H100/H200, within BUDGET_S (560 s) of its start:
#   0. a venv holding the carried wheels (.gpu/, made by scripts/gpu_wheels.sh) in front of the machine's torch;
#   1. the machine and versions (env.json);
#   2. benchmarks/test_gpu.py: recipe as written, packed bf16 and the fast path, one process (gpu-bench.json),
#      summarised by scripts/gpu_summary.py (gpu-summary.json: the figures results/gpu/ records);
#   3. learning per token: the CLI trains packed bf16 and seed-shape-fast on the same texts (1 epoch each, so the same
#      tokens) and evaluates both on the same held-out set (learn-packed/, learn-fast/ results.json);
#   4. the masking fingerprint of the machine's versions against the stored ones (fingerprint/: the new file);
#   5. the contract suite with what is left (tests.xml).
# Every step runs under `timeout` within what is left of the budget; its log and status go to $WORK/out, which leaves
# as $OUT/gpu-check.tgz (the device tool brings back 8 files at most) beside run.log, steps.tsv and gpu-summary.json.
#
# On the device tool:  command "COMMIT=$(git rev-parse --short HEAD) bash scripts/gpu_check.sh", with the hash
# written out (the machine's copy of .git can name an older commit than the tree it gets), carry [".gpu"],
# timeout_s 600. Measured on an H200 (26 Nov 2026): bench 173 s (fast's compile warm-up 124 s), learn-packed 44 s,
# learn-fast past 100 s (compiling), contract suite 151 s.
# On CPU, as a check of this script:  DRY_RUN=1 OUT=/tmp/gpu-dry bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-out}
DRY_RUN=${DRY_RUN:-0}
BUDGET_S=${BUDGET_S:-560}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')}
export COMMIT  # scripts/gpu_summary.py records it
RESERVE_S=10  # for the summary at the end
DEADLINE=$((SECONDS + BUDGET_S))
WORK=${WORK:-/tmp/mlm-bench-gpu}
LOG=$WORK/out
rm -rf "$WORK" && mkdir -p "$LOG" "$OUT"
: > "$LOG/steps.tsv"
pack() { tar -czf "$OUT/gpu-check.tgz" -C "$LOG" . && cp "$LOG"/{run.log,steps.tsv,gpu-summary.json} "$OUT"/ 2>/dev/null; }
trap pack EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME=$WORK/hf

log() { echo "$*" | tee -a "$LOG/run.log"; }

# step NAME CAP MIN CMD...: CMD under timeout min(CAP, budget left); skipped when that is under MIN seconds.
step() {
    local name=$1 cap=$2 min=$3
    shift 3
    local left=$((DEADLINE - SECONDS - RESERVE_S))
    local limit=$((cap < left ? cap : left))
    if ((limit < min)); then
        log "== $name: skipped (${left}s of the budget left, needs ${min}s)"
        printf '%s\tskipped\t-\t0\n' "$name" >> "$LOG/steps.tsv"
        return 0
    fi
    log "== $name [$(date -u +%H:%M:%S), limit ${limit}s]: $*"
    local start=$SECONDS
    timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG/run.log" > "$LOG/$name.log"
    local rc=${PIPESTATUS[0]} status=ok
    ((rc != 0)) && status=failed
    ((rc == 124 || rc == 137)) && status=timeout
    log "== $name: $status (rc $rc) in $((SECONDS - start))s"
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$((SECONDS - start))" >> "$LOG/steps.tsv"
    return "$rc"
}

log "mlm-bench GPU check $(date -u +%FT%TZ) on $(uname -n), commit ${COMMIT}, budget ${BUDGET_S}s, dry run ${DRY_RUN}"

# --- 0. Python: the carried wheels first, then every site directory of the machine's own python (its torch) ------
if [[ ! -d .gpu/wheels ]]; then
    log "no .gpu/wheels: run scripts/gpu_wheels.sh here and carry .gpu"
    exit 2
fi
if [[ $DRY_RUN == 1 ]]; then
    PY=${PY:-.venv/bin/python}
    # This machine runs another Python: check only that pip takes every wheel for CPython 3.12.
    step install 120 10 "$PY" -m pip install -q --no-index --no-deps --target "$WORK/site312" --only-binary=:all: \
        --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux_2_17_x86_64 .gpu/wheels/*.whl
    export PYTHONPATH=$ROOT
    DEVICE=cpu
else
    python3 -m venv --without-pip "$WORK/venv"
    PY=$WORK/venv/bin/python3
    SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    {
        echo "$ROOT/.gpu/site"
        # The machine's python's site directories, after ours: its torch, numpy, pytest... (as seen without PYTHONPATH)
        env -u PYTHONPATH python3 -c 'import sys; [print(f"import site; site.addsitedir({p!r})") for p in sys.path if p.endswith(("site-packages", "dist-packages"))]'
    } > "$SITE/zz_mlm_bench_chain.pth"
    step install 120 10 python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .gpu/wheels/*.whl
    # tests/test_ddp.py starts workers with PYTHONPATH set to the project alone: the venv's .pth still chains the rest.
    export PYTHONPATH=$ROOT
    DEVICE=cuda
fi

# --- 1. the machine ------------------------------------------------------------------------------------------------
[[ $DEVICE == cuda ]] && step nvidia-smi 20 5 nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv
step env 60 10 "$PY" -c '
import json, sys, torch
from mlm_bench.runs.results import device_info, versions
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
info = {"python": sys.version, "versions": versions(), "device": device_info(device), "cuda": torch.version.cuda}
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps(info, indent=2))
' "$LOG/env.json"

# --- 2. GPU benchmarks and their summary ---------------------------------------------------------------------------
BENCH_FLAGS=()
[[ $DRY_RUN == 1 ]] && BENCH_FLAGS=(--gpu-dry-run)
step bench 240 60 "$PY" -m pytest benchmarks/test_gpu.py -p no:cacheprovider -q -rs "${BENCH_FLAGS[@]}" \
    --benchmark-json "$LOG/gpu-bench.json"
[[ -f $LOG/gpu-bench.json ]] && step summary 30 5 "$PY" scripts/gpu_summary.py "$LOG/gpu-bench.json" "$LOG/gpu-summary.json"

# --- 3. learning per token: packed bf16 against the fast path, same texts, same epochs, same held-out set ----------
LEARN=(--num_train_epochs 1 --learning_rate 1e-4 --save_steps 0 --logging_steps 20 --force --device "$DEVICE")
# Attention dropout 0 in both: the fast path's FlexAttention has none, and this compares the paths, not the models.
PACKED=(--preset seed-shape --bf16 on --tf32 on --sparse_head true --fused_adamw true --attention_dropout 0)
FAST=(--preset seed-shape-fast)
if [[ $DRY_RUN == 1 ]]; then
    TINY=(--hidden_size 64 --num_hidden_layers 2 --num_attention_heads 2 --intermediate_size 128 --vocab_size 0
          --max_steps 4 --eval_rows 50 --cloze_probes 1)
    PACKED=(--preset seed-shape "${TINY[@]}" --attention_dropout 0)
    FAST=(--preset seed-shape-fast "${TINY[@]}" --attn_implementation sdpa)  # flex has no CPU backward
fi
for variant in packed fast; do
    declare -n flags=${variant^^}
    cap=$([[ $variant == fast ]] && echo 150 || echo 70)  # fast compiles first: 72 s for its first 2 steps
    step "learn-$variant" "$cap" 40 "$PY" -m mlm_bench run "${flags[@]}" "${LEARN[@]}" --output-dir "$WORK/learn-$variant"
    if [[ -f $WORK/learn-$variant/results.json ]]; then
        mkdir -p "$LOG/learn-$variant" && cp "$WORK/learn-$variant/results.json" "$LOG/learn-$variant/"
    fi
done

# --- 4. the fingerprint of these versions (a new version set has none stored: the file comes back for review) -----
cp -r mlm_bench/contract/fingerprints "$WORK/fingerprints"
step fingerprint 60 20 "$PY" -m mlm_bench fingerprint --dir "$WORK/fingerprints"
mkdir -p "$LOG/fingerprint" && cp "$WORK/fingerprints"/*.json "$LOG/fingerprint/"

# --- 5. the contract suite -----------------------------------------------------------------------------------------
TESTS=(tests/ -n 8)
[[ $DRY_RUN == 1 ]] && TESTS=(tests/test_model.py -n 2)  # a check of the step, not the suite
# -m "": the slow tests too, as before they were marked; -W default: the GPU machine's versions are not the lock's.
step tests 240 45 "$PY" -m pytest "${TESTS[@]}" -q -p no:cacheprovider --hypothesis-profile ci -m "" -W default \
    --junitxml "$LOG/tests.xml"

log "== done in ${SECONDS}s; steps:"
cat "$LOG/steps.tsv" | tee -a "$LOG/run.log"
exit 0  # each step's status is in steps.tsv and run.log
