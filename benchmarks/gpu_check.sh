#!/usr/bin/env bash
# GPU check: the figures only a CUDA GPU can give, in one run of under 8 minutes, into one file.
#
#   bash benchmarks/gpu_check.sh                 # from anywhere in the repository
#   bash benchmarks/gpu_check.sh --fetch-wheels  # on a networked machine, before a run on one without
#
# Results: $OUT/gpu_check.txt when OUT is set, else outputs/gpu_check.txt (everything printed goes
# there too). Sections, each under its own `timeout` and all under one budget (GPU_CHECK_BUDGET_S,
# default 440 s, counted once Python is ready; what would start later is recorded as skipped;
# GPU_CHECK_SKIP_TESTS=1 leaves out section 1, for a session that runs those tests beside other work):
#   1. the tests marked `gpu` (tests/test_gpu.py): GAN, CycleGAN and pix2pix steps under 32-true,
#      bf16-mixed and 16-mixed, clipping under fp16 loss scaling, metrics on CUDA vs CPU,
#      ganforge-export of a GPU-trained checkpoint;
#   2. bench_train.py on CUDA: ganforge vs the plain PyTorch loop, DCGAN at 64 px, widths 64,
#      batch 128, fp32 then bf16 (images/s, TFLOP/s against the measured and datasheet peaks);
#   3. bench_translation.py: CycleGAN at 256 px, 9 blocks, width 64, batch 1 and 4, fp32 and bf16:
#      seconds per iteration and peak CUDA memory;
#   4. bench_metrics.py --device cuda: images/s of a whole evaluation;
#   5. bench_stylegan2.py --device cuda: a StyleGAN2 iteration with R1/R2 (wide, then narrow), the
#      resampling filter as a depthwise convolution vs separable shifted sums (what CUDA uses);
#   6. bench_train.py with --compile (inductor), fp32 then bf16: last, as compiling takes longest.
# A failing section is recorded (FAILED / TIMED OUT) and the next one runs; the exit status is the
# number of failed sections. Without CUDA, each GPU section writes "skipped: no CUDA device" and the
# benchmarks run once at tiny sizes on the CPU instead, which checks the script itself (~3 min on 2
# cores).
#
# Python: an existing .venv is used as it is. Otherwise, where python3 already has torch and
# Lightning (the GPU machines' image) and a folder .whl/ holds wheels of the few pure-Python packages
# that image lacks, those and ganforge (editable, no build isolation) are installed into it offline;
# failing both, `make setup` (needs the package index: ~5.5 GB with torch). GPU machines here reach no
# network and a carried path may hold at most 64 MiB (a .venv is ~5.5 GB, and built for this
# machine's Python), so: run `bash benchmarks/gpu_check.sh --fetch-wheels` first (writes .whl/, which
# git ignores, ~3 MB), then run the check there with `.whl` carried. With the wheels, setup takes
# seconds, so setup + budget stay under 8 minutes; `make setup` takes minutes more.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Pure-Python packages the GPU image lacks, and a setuptools new enough for pyproject.toml's
# `license = "MIT"` (>= 77), all as this .venv has them.
WHEELS="hydra-core omegaconf antlr4-python3-runtime mlxtend torch-fidelity"
if [[ ${1:-} == --fetch-wheels ]]; then
    py=.venv/bin/python
    pins=$("$py" -m pip freeze --all | grep -iE "^($(echo "$WHEELS setuptools" | sed 's/[-_]/[-_]/g; s/ /|/g'))==")
    mkdir -p .whl
    # shellcheck disable=SC2086  # one argument per pin
    "$py" -m pip wheel --quiet --no-deps --wheel-dir .whl $pins
    ls -l .whl
    exit 0
fi

BUDGET_S=${GPU_CHECK_BUDGET_S:-440}
RESULTS=${OUT:+$OUT/gpu_check.txt}
RESULTS=${RESULTS:-outputs/gpu_check.txt}
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled COLUMNS=140
FAILED=0
SUMMARY=()

log() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

# section NAME LIMIT_S COMMAND...: COMMAND under `timeout`, its output into the results file; records
# ok / FAILED / TIMED OUT and never stops the script.
section() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET_S - SECONDS - 15)) # 15 s for timeout's kill grace and the summary
    log ""
    log "=== $name"
    if ((left < 20)); then
        log "skipped: out of the ${BUDGET_S} s budget"
        SUMMARY+=("$name: skipped (budget)")
        return 0
    fi
    ((limit > left)) && limit=$left
    log "\$ $* (limit ${limit} s)"
    local start=$SECONDS rc=0
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$RESULTS" || rc=$?
    local took=$((SECONDS - start)) status
    case $rc in
    0) status="ok" ;;
    124 | 137) status="TIMED OUT after ${limit} s" ;;
    *) status="FAILED (exit $rc)" ;;
    esac
    ((rc == 0)) || FAILED=$((FAILED + 1))
    log "--- $name: $status, ${took} s"
    SUMMARY+=("$name: $status, ${took} s")
}

# gpu_section: a section that needs CUDA; without it, one clear line instead.
gpu_section() {
    if ((HAS_CUDA)); then
        section "$@"
    else
        log ""
        log "=== $1"
        log "skipped: no CUDA device"
        SUMMARY+=("$1: skipped: no CUDA device")
    fi
}

# cpu_section: the same benchmark at a tiny size, run only where there is no CUDA.
cpu_section() { ((HAS_CUDA)) || section "$@"; }

setup_python() {
    if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import ganforge" 2>/dev/null; then
        PY=.venv/bin/python
    elif [[ -d .whl ]] && python3 -c "import torch, pytorch_lightning, torchmetrics" 2>/dev/null; then
        PY=$(python3 -c "import sys; print(sys.executable)") || return 1
        # shellcheck disable=SC2086  # one argument per package; those already there are kept
        "$PY" -m pip install --quiet --no-index --no-deps --find-links .whl $WHEELS "setuptools>=77" || return 1
        "$PY" -m pip install --quiet --no-index --no-deps --no-build-isolation -e . || return 1
    else
        timeout 900 make setup || return 1
        PY=.venv/bin/python
    fi
    "$PY" -c "import ganforge, hydra, omegaconf, mlxtend"
}

log "# ganforge GPU check, $(date -u '+%Y-%m-%d %H:%M:%S UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
log ""
log "=== python environment"
if ! setup_python > >(tee -a "$RESULTS") 2>&1; then
    log "--- python environment: FAILED; nothing else can run"
    exit 1
fi
log "--- python environment: ok ($PY), ${SECONDS} s"
SETUP_S=$SECONDS
SECONDS=0 # the budget counts from here
log "budget ${BUDGET_S} s for the sections below"

log ""
log "=== machine"
{ timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "nvidia-smi: not available"; } | tee -a "$RESULTS"
timeout 60 "$PY" -c "
import os, sys, torch
print(f'python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, '
      f'cuDNN {torch.backends.cudnn.version()}, {os.cpu_count()} CPUs')
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f'torch sees {torch.cuda.device_count()} GPU(s): {p.name}, {p.total_memory / 2**30:.0f} GiB, sm {p.major}.{p.minor}')
else:
    print('torch sees no CUDA device')
" 2>&1 | tee -a "$RESULTS"
HAS_CUDA=$(timeout 60 "$PY" -c "import torch; print(int(torch.cuda.is_available()))")

# DCGAN at 64 px with the paper's widths, batch 128: 35 batches of the 4,500 mnist5k training
# images, so 10 warm-up + 20 timed + 1 counted iterations fit in the one epoch a repetition uses.
DCGAN64=(--override data.img_size=64 --override data.batch_size=128
    --override model.generator.width=64 --override model.discriminator.width=64)
TINY=(--override data=digits --override data.img_size=16 --override data.batch_size=16
    --override model.generator.width=8 --override model.discriminator.width=8)
PYTEST=("$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py -rfEsP --show-capture=stdout)

if [[ ${GPU_CHECK_SKIP_TESTS:-0} == 1 ]]; then
    log ""
    log "=== tests marked gpu"
    log "skipped: GPU_CHECK_SKIP_TESTS=1 (run separately)"
    SUMMARY+=("tests marked gpu: skipped (GPU_CHECK_SKIP_TESTS=1)")
elif ((HAS_CUDA)); then
    section "tests marked gpu" 200 "${PYTEST[@]}"
else
    section "tests marked gpu (each skipped: no CUDA device)" 120 "${PYTEST[@]}"
fi
gpu_section "bench_train: DCGAN 64 px, batch 128, fp32 (cuDNN TF32), eager" 100 \
    "$PY" benchmarks/bench_train.py --device cuda --precision 32-true --repeats 3 --iters 20 "${DCGAN64[@]}"
gpu_section "bench_train: DCGAN 64 px, batch 128, bf16-mixed, eager" 100 \
    "$PY" benchmarks/bench_train.py --device cuda --precision bf16-mixed --repeats 3 --iters 20 "${DCGAN64[@]}"
cpu_section "bench_train, CPU, tiny: bf16-mixed, compiled (aot_eager)" 120 \
    "$PY" benchmarks/bench_train.py --device cpu --precision bf16-mixed --compile aot_eager \
    --repeats 1 --iters 4 --block 2 "${TINY[@]}"
gpu_section "bench_translation: CycleGAN 256 px, 9 blocks, width 64, batch 1 and 4" 100 \
    "$PY" benchmarks/bench_translation.py --device cuda --precision 32-true bf16-mixed --batch-sizes 1 4
cpu_section "bench_translation, CPU, tiny: 32 px, 2 blocks, width 16" 150 \
    "$PY" benchmarks/bench_translation.py --device cpu --img-size 32 --blocks 2 --width 16 \
    --warmup 1 --iters 2 --batch-sizes 1 2
gpu_section "bench_metrics on CUDA" 60 "$PY" benchmarks/bench_metrics.py --device cuda
cpu_section "bench_metrics, CPU, 200 generated images" 90 \
    "$PY" benchmarks/bench_metrics.py --device cpu --n-fake 200
gpu_section "bench_stylegan2: Stacked MNIST StyleGAN2 (R3GAN loss), wide, depthwise vs separable filter" 90 \
    "$PY" benchmarks/bench_stylegan2.py --device cuda --wide
gpu_section "bench_stylegan2: the same, the README's narrow network" 60 \
    "$PY" benchmarks/bench_stylegan2.py --device cuda
cpu_section "bench_stylegan2, CPU, narrow, 2 iterations per turn" 90 "$PY" benchmarks/bench_stylegan2.py --quick
gpu_section "bench_train: DCGAN 64 px, batch 128, fp32, compiled (inductor)" 150 \
    "$PY" benchmarks/bench_train.py --device cuda --precision 32-true --compile --repeats 2 --iters 20 "${DCGAN64[@]}"
gpu_section "bench_train: DCGAN 64 px, batch 128, bf16-mixed, compiled (inductor)" 150 \
    "$PY" benchmarks/bench_train.py --device cuda --precision bf16-mixed --compile --repeats 2 --iters 20 "${DCGAN64[@]}"

log ""
log "=== summary: ${SECONDS} s of sections after ${SETUP_S} s of setup, ${FAILED} section(s) failed"
for line in "${SUMMARY[@]}"; do log "  $line"; done
exit "$FAILED"
