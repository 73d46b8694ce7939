#!/usr/bin/env bash
# Sparse-retraining tweaks on ResNet-20 tickets of the CIFAR-10 subset (issue 16), at
# CPU scale: the one-shot IMP runs of benchmarks/elastic_cpu_study.sh (20% of the
# weights, k = 1 epoch, 8-epoch phases with a 1-epoch warm-up) are retrained from k
# with each tweak alone and with swish + label smoothing + KD + extra skips, as
# `keras-lottery retrain` branches of each run (seeds = the three IMP runs). Vanilla
# retraining is the IMP run's own round-1 ticket training (same recipe, budget, start
# and data order). Two chains, one TensorFlow thread each; resumable.
#   IMP=runs/elastic_cpu/imp RUNS="imp_a imp_b imp_c" bash benchmarks/tweaks_cifar_study.sh
#   python benchmarks/tweaks_table.py runs/elastic_cpu/imp --json summary.json
set -u
IMP=${IMP:?the folder of the ResNet-20 IMP runs}
RUNS=(${RUNS:?three run folder names})
CLI=${CLI:-keras-lottery}
LOGS=${LOGS:-$IMP/../tweak_logs}
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 KERAS_BACKEND=tensorflow
export PYTHONUNBUFFERED=1
mkdir -p "$LOGS"
arm() {  # run tweak...
  local run=$1; shift
  local flags=()
  for tweak in "$@"; do flags+=(--tweak "$tweak"); done
  $CLI retrain "$IMP/$run" --round 1 --wait "${flags[@]}" >> "$LOGS/$run.log" 2>&1
}
arms() {  # run
  arm "$1" swish; arm "$1" label_smoothing; arm "$1" kd; arm "$1" extra_skips
  arm "$1" swish label_smoothing kd extra_skips
}
{ arms "${RUNS[0]}"; arm "${RUNS[2]}" swish; arm "${RUNS[2]}" label_smoothing; } &
{ arms "${RUNS[1]}"; arm "${RUNS[2]}" kd; arm "${RUNS[2]}" extra_skips
  arm "${RUNS[2]}" swish label_smoothing kd extra_skips; } &
wait
