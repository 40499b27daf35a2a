#!/usr/bin/env bash
# Stacked MNIST with the R3GAN-loss StyleGAN2 on one CUDA GPU: four runs side by side, each for
# STACKED_TIME (default 4 minutes), the modes counted every 2,000 iterations and at the stop.
#
#   PY=python3 STACKED_TIME=00:00:04:00 bash experiments/architectures_mnist5k/gpu_stacked.sh
#
# Runs (decided before any GPU run; none tuned on these seeds):
#   narrow_s1, narrow_s2  the README table's setting (channels 32/32/18, batch 32), seeds 1 and 2:
#                         what more iterations of the same give
#   wide_s1, wide_s2      channels x4 (channel_base 2048, channel_max 128: 128 at 7 and 14 px, 73
#                         at 28 px) and batch 64, seeds 1 and 2: the width a GPU makes cheap
# Output: outputs/gpu_stacked/<run>/... and, where OUT is set, $OUT/gpu_stacked.tar.gz (each run's
# metrics.csv, last sample grid, config and log; the narrow runs' last.ckpt, 2 MB each) and $OUT/gpu_stacked.txt (the counts).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=${PY:-.venv/bin/python}
TIME=${STACKED_TIME:-00:00:04:00}
ROOT=outputs/gpu_stacked
SUMMARY=${OUT:+$OUT/gpu_stacked.txt}
SUMMARY=${SUMMARY:-$ROOT/summary.txt}
mkdir -p "$ROOT" "$(dirname "$SUMMARY")"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled OMP_NUM_THREADS=2

# STACKED_EXTRA: more overrides for every run, e.g. "trainer.accelerator=cpu callbacks.modes.n_samples=500"
# to try the script on a CPU in a minute
# shellcheck disable=SC2206  # one override per word
EXTRA=(${STACKED_EXTRA:-})
COMMON=(experiment=stylegan2_r3gan_stacked_mnist_arch trainer.accelerator=gpu trainer.devices=1
    trainer.max_epochs=100000 model.max_iters=null "+trainer.max_time=$TIME"
    +trainer.limit_train_batches=2000 logger=csv)
WIDE=(model.generator.channel_base=2048 model.generator.channel_max=128 data.batch_size=64)

launch() { # launch TAG SEED overrides...
    local tag=$1 seed=$2
    shift 2
    "$PY" -m ganforge.train "${COMMON[@]}" seed="$seed" "paths.outputs_root=$ROOT/$tag" "$@" "${EXTRA[@]}" \
        >"$ROOT/$tag.log" 2>&1 &
    pids+=("$!")
}

pids=()
launch narrow_s1 1
launch narrow_s2 2
launch wide_s1 1 "${WIDE[@]}"
launch wide_s2 2 "${WIDE[@]}"
wait "${pids[@]}"

{
    echo "# Stacked MNIST, R3GAN-loss StyleGAN2, one GPU, 4 runs side by side, $TIME each"
    "$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
    for tag in narrow_s1 narrow_s2 wide_s1 wide_s2; do
        echo "== $tag"
        csv=$(find "$ROOT/$tag" -name metrics.csv | head -1)
        [[ -n $csv ]] && "$PY" - "$csv" <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("val/modes")]
for r in rows:
    print(f"step {r['step']:>6}  modes {float(r['val/modes']):6.0f}  KL {float(r['val/kl']):.3f}  "
          f"if independent {float(r['val/modes_if_independent']):6.0f}")
EOF
        grep -h -E "Time limit|Error|error" "$ROOT/$tag.log" | tail -3
        find "$ROOT/$tag" -name run_stats.json -exec grep -h -E '"sec_per_iter"|"peak_mem_mb"' {} +
    done
} 2>&1 | tee "$SUMMARY"

if [[ -n ${OUT:-} ]]; then
    (cd "$ROOT" && find . \( -name metrics.csv -o -name last.png -o -name config.yaml -o -name run_stats.json \
        -o -name '*.log' -o \( -path './narrow*' -name last.ckpt \) \) -print0 | tar --null -czf "$OUT/gpu_stacked.tar.gz" --files-from=-)
fi
