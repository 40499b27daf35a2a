#!/usr/bin/env bash
# Every row of experiments/architectures_mnist5k/README.md: DCGAN, SNGAN and a small StyleGAN2 on
# mnist5k, seeds 1-3, each stopped by the same wall-clock budget (Lightning's trainer.max_time) on
# one thread, two runs side by side on the 2-core CPU (the StyleGAN2 with a tanh output too, reported
# apart); StyleGAN2 on Stacked MNIST (seed 1); the
# StyleGAN2 with R3GAN's loss (seeds 1-3; Stacked MNIST seeds 1 and 2) at its own, longer budgets; then the
# reports, the sample mosaic and the truncation sweep of StyleGAN2's seed-1 checkpoint.
# LANE=long instead trains StyleGAN2 with its own recipe for an hour (seeds 1 and 2 on mnist5k,
# seed 1 on Stacked MNIST; LONG_BUDGET changes it), reports them and sweeps truncation on seed 1.
# From the repository root:
#   nohup bash experiments/architectures_mnist5k/run.sh > outputs/architectures_mnist5k.log 2>&1 &
# LANE=1 or LANE=2 runs one half only; LANE1/LANE2 ("experiment:seed ...") change a half's runs;
# LANE=report only reports; BUDGET=DD:HH:MM:SS changes the budget (R3_BUDGET the R3GAN-loss rows',
# R3_STACKED_BUDGET their Stacked MNIST runs').
set -euo pipefail
TRAIN="${TRAIN:-ganforge-train}"
REPORT="${REPORT:-ganforge-report}"
PYTHON="${PYTHON:-python}"  # the environment ganforge is installed in (make setup: .venv/bin/python)
OUT="${OUT:-outputs/architectures_mnist5k}"
STACKED="${STACKED:-outputs/architectures_stacked_mnist}"
BUDGET="${BUDGET:-00:00:05:00}"   # training wall-clock per run; evaluations during training count in it
R3_OUT="${R3_OUT:-outputs/architectures_mnist5k_r3gan}"           # the R3GAN-loss rows, reported apart
TANH_OUT="${TANH_OUT:-outputs/architectures_mnist5k_tanh}"        # the tanh-output StyleGAN2 row, reported apart
R3_STACKED="${R3_STACKED:-outputs/architectures_stacked_mnist_r3gan}"
R3_BUDGET="${R3_BUDGET:-00:00:20:00}"   # R1 + R2 on every D step cost ~0.6 s per iteration: 5 minutes is ~470
R3_STACKED_BUDGET="${R3_STACKED_BUDGET:-00:01:00:00}"   # ~8,000 iterations: two mode counts (every 4,000) and the final one
LONG_OUT="${LONG_OUT:-outputs/architectures_mnist5k_long}"       # LANE=long: StyleGAN2's own recipe, longer
LONG_STACKED="${LONG_STACKED:-outputs/architectures_stacked_mnist_long}"
LONG_BUDGET="${LONG_BUDGET:-00:01:00:00}"
CACHE=outputs/.cache/metrics      # real-data statistics, shared with ganforge-eval's truncation sweep
HERE=experiments/architectures_mnist5k
METRICS='val/fid,val/kid_mean,val/precision,val/recall,val/density,val/coverage,perf/sec_per_iter,params/*'   # every report's columns
R3=stylegan2_r3gan
LANE1="${LANE1:-dcgan_mnist5k:1 dcgan_mnist5k:2 dcgan_mnist5k:3 sngan_mnist5k_arch:1 stylegan2_mnist5k:1 stylegan2_tanh_mnist5k:1 stylegan2_tanh_mnist5k:3 ${R3}_mnist5k:1 ${R3}_mnist5k:3 ${R3}_stacked_mnist_arch:2}"
LANE2="${LANE2:-sngan_mnist5k_arch:2 sngan_mnist5k_arch:3 stylegan2_mnist5k:2 stylegan2_mnist5k:3 stylegan2_tanh_mnist5k:2 stylegan2_stacked_mnist_arch:1 ${R3}_mnist5k:2 ${R3}_stacked_mnist_arch:1}"
export OMP_NUM_THREADS=1

run() {  # run <experiment> <seed>: one run, stopped by its budget
  local every out="$OUT" stacked="$STACKED" budget="$BUDGET"
  case "$1" in
    $R3*stacked*) stacked="$R3_STACKED" budget="$R3_STACKED_BUDGET" ;;
    $R3*) out="$R3_OUT" budget="$R3_BUDGET" ;;
    stylegan2_tanh*) out="$TANH_OUT" ;;
  esac
  if [[ "${LANE:-}" == long ]]; then out="$LONG_OUT" stacked="$LONG_STACKED" budget="$LONG_BUDGET"; fi
  case "$1" in  # about 4-6 evaluations during the budget, plus the final one
    dcgan*) every=20 ;;      # ~2,600-4,000 iterations = 37-57 epochs of 70 batches
    sngan*) every=3 ;;       # ~700 iterations = ~10 epochs
    *stacked*)               # no FID (metrics=none): the 26,000-sample mode count at the end
      $TRAIN "experiment=$1" "seed=$2" "+trainer.max_time=$budget" trainer.max_epochs=100000 model.max_iters=null \
        "paths.outputs_root=$stacked" 'callbacks.progress_bar=null'
      return ;;
    $R3*) every=3 ;;         # ~1,750 iterations in 20 minutes = ~12 epochs of 140 batches of 32
    stylegan2*) every=2 ;;   # ~950 iterations = ~7 epochs of 140 batches of 32
  esac
  if [[ "${LANE:-}" == long ]]; then every=20; fi  # 2,800 iterations: every ~15 minutes
  $TRAIN "experiment=$1" "seed=$2" "+trainer.max_time=$budget" trainer.max_epochs=100000 model.max_iters=null \
    'metrics.names=[fid,kid,pr,dc]' "metrics.every_n_epochs=$every" "metrics.cache_dir=$CACHE" \
    "paths.outputs_root=$out" 'callbacks.progress_bar=null'
}

lane() { for item in "$@"; do run "${item%:*}" "${item#*:}"; done; }

truncation() {  # truncation <runs folder> <picture>: the psi sweep of StyleGAN2's seed-1 checkpoint
  local seed1
  seed1=$(dirname "$(grep -l '^seed: 1$' "$1"/stylegan2_mnist5k/*/config.yaml | head -1)")
  "$PYTHON" -m ganforge.reporting.truncation "ckpt=$seed1/checkpoints/last.ckpt" out="$1_truncation" cache_dir="$CACHE"
  cp "$1_truncation/truncation.png" "$HERE/$2"
}

if [[ "${LANE:-}" == long ]]; then
  lane stylegan2_mnist5k:1 stylegan2_stacked_mnist_arch:1 & lane stylegan2_mnist5k:2 & wait
  $REPORT "$LONG_OUT" out="$LONG_OUT/report" \
    metrics="$METRICS"
  "$PYTHON" "$HERE/budget.py" "$LONG_OUT" "$LONG_STACKED"
  truncation "$LONG_OUT" truncation_long.png
  exit 0
fi

case "${LANE:-both}" in
  1) lane $LANE1 ;;
  2) lane $LANE2 ;;
  report) ;;
  *) lane $LANE1 & lane $LANE2 & wait ;;
esac
$REPORT "$OUT" out="$OUT/report" \
  metrics="$METRICS" \
  readme="$HERE/README.md"
cp "$OUT/report/samples_mosaic.png" "$HERE/samples_mosaic.png"
"$PYTHON" "$HERE/budget.py" "$OUT" "$STACKED"   # iterations and images per run, Stacked MNIST modes
$REPORT "$R3_OUT" out="$R3_OUT/report" \
  metrics="$METRICS"
"$PYTHON" "$HERE/budget.py" "$R3_OUT" "$R3_STACKED"
$REPORT "$TANH_OUT" out="$TANH_OUT/report" \
  metrics="$METRICS"
"$PYTHON" "$HERE/budget.py" "$TANH_OUT"
truncation "$OUT" truncation.png

