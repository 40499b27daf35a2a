#!/usr/bin/env bash
# Every row of experiments/translation_methods/README.md: each method on each benchmark, seeds 1-3
# (photo2painting: seed 1; the *_photo2painting_tv rows: seeds 2 and 3 for CUT, 2 for the others),
# two runs side by side on one thread each, then the report. From the repository root:
#   nohup bash experiments/translation_methods/run.sh > outputs/translation_methods.log 2>&1 &
# LANE=1 or LANE=2 runs one half only (e.g. on two machines); SEEDS=... changes the seeds.
set -euo pipefail
TRAIN="${TRAIN:-ganforge-train}"
REPORT="${REPORT:-ganforge-report}"
PYTHON="${PYTHON:-python}"  # the environment ganforge is installed in (make setup: .venv/bin/python)
OUT="${OUT:-outputs/translation_methods}"
SEEDS="${SEEDS:-1,2,3}"
export OMP_NUM_THREADS=1

run() {  # run <experiment> <seeds>
  $TRAIN -m "experiment=$1" "seed=$2" "paths.outputs_root=$OUT" 'callbacks.progress_bar=null'
}

lane1() {
  run cyclegan_digits2mnist "$SEEDS"
  run cut_digits2mnist "$SEEDS"
  run fastcut_digits2mnist "$SEEDS"
  run cut_photo2painting 1
  run cut_photo2painting_tv 2,3   # seeds 0 and 1 chose its settings
}

lane2() {
  run pix2pix_digits2ink "$SEEDS"
  run cyclegan_digits2ink "$SEEDS"
  run cut_digits2ink "$SEEDS"
  run fastcut_digits2ink "$SEEDS"
  run cyclegan_photo2painting 1
  run fastcut_photo2painting 1
  run cyclegan_photo2painting_tv 2
  run fastcut_photo2painting_tv 2
}

case "${LANE:-both}" in
  1) lane1 ;;
  2) lane2 ;;
  *) lane1 & lane2 & wait ;;
esac
$REPORT "$OUT" out="$OUT/report" plots=false select=val/label_acc_select \
  metrics='val/psnr,val/ssim,val/label_acc,val/label_acc_select,val/fid,val/kid_mean,perf/*,params/total' \
  readme=experiments/translation_methods/README.md
"$PYTHON" experiments/translation_methods/figure.py "$OUT" 1
