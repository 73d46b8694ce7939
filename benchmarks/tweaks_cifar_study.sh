#!/usr/bin/env bash
# Sparse-retraining tweaks on ResNet-20 tickets of the CIFAR-10 subset (issue 16), at
# CPU scale. The tickets are one-shot IMP runs with the recipe of
# benchmarks/elastic_cpu_study.sh (FRACTION of the weights pruned, k = 1 epoch, 8-epoch
# phases with a 1-epoch warm-up, lr x0.1 at epochs 5 and 7); each is retrained from k
# with every arm of ARMS as a `keras-lottery retrain` branch of its run. Vanilla
# retraining is the IMP run's own round-1 ticket training (same recipe, budget, start
# and data order). Two chains, one TensorFlow thread each; everything resumes.
#
# Either give existing IMP runs (the elastic study's 20% tickets):
#   IMP=runs/elastic_cpu/imp RUNS="imp_a imp_b imp_c" bash benchmarks/tweaks_cifar_study.sh
# or let the script make one per seed first (here 10% of the weights; REWIND sets
# their k, default 1ep):
#   IMP=runs/tweaks_10/imp FRACTION=0.9 SEEDS="0 1 2" bash benchmarks/tweaks_cifar_study.sh
# then:
#   python benchmarks/tweaks_table.py runs/elastic_cpu/imp --json summary.json
# ARMS: arms separated by ';', each a list of tweak names and retrain.KEY=V settings.
set -u
IMP=${IMP:?the folder of the ResNet-20 IMP runs}
ARMS=${ARMS:-swish; label_smoothing; kd; extra_skips; extra_skips retrain.skip_bn_gamma=0;
extra_skips retrain.skip_fade_epochs=3; swish label_smoothing kd extra_skips}
CLI=${CLI:-keras-lottery}
CONFIG=${CONFIG:-configs/resnet20_cifar10_subset.yaml}
FRACTION=${FRACTION:-0.8}
LOGS=${LOGS:-$IMP/../tweak_logs}
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 KERAS_BACKEND=tensorflow
export PYTHONUNBUFFERED=1
mkdir -p "$LOGS" "$IMP"

REWIND=${REWIND:-1ep}   # k of the tickets made with SEEDS (0: reset to initialization)
recipe=(--set training.duration=8ep --set "training.milestones=[5ep, 7ep]"
        --set training.warmup=1ep --set pruning.rounds=1 --set "pruning.fraction=$FRACTION"
        --set "pruning.rewind=$REWIND")
run_of() {  # seed -> the IMP run folder's name
  $CLI run "$CONFIG" --out "$IMP" --print-config --set "seed=$1" "${recipe[@]}" \
    2>/dev/null | sed -n 's/^# run folder: //p' | xargs basename
}
imp() {  # seed
  $CLI run "$CONFIG" --out "$IMP" --wait --set "seed=$1" "${recipe[@]}" \
    >> "$LOGS/imp_seed$1.log" 2>&1
}
arm() {  # run, then tweaks and retrain.KEY=V settings
  local run=$1; shift
  local flags=()
  for item in "$@"; do
    case $item in
      retrain.*) flags+=(--set "$item") ;;
      *) flags+=(--tweak "$item") ;;
    esac
  done
  $CLI retrain "$IMP/$run" --round 1 --wait "${flags[@]}" >> "$LOGS/$run.log" 2>&1
}

if [ -n "${SEEDS:-}" ]; then  # make the tickets: one IMP run per seed, two chains
  seeds=($SEEDS)
  for chain in 0 1; do
    { for i in "${!seeds[@]}"; do
        if [ $((i % 2)) = $chain ]; then imp "${seeds[$i]}"; fi
      done; } &
  done
  wait
  RUNS=$(for seed in $SEEDS; do run_of "$seed"; done | tr '\n' ' ')
fi
runs=(${RUNS:?three run folder names, or SEEDS to make them})
IFS=';' read -r -a arms <<< "$(echo "$ARMS" | tr '\n' ' ')"
jobs=()  # every (arm, run), arm-major so that each arm finishes its seeds early
for spec in "${arms[@]}"; do
  for run in "${runs[@]}"; do jobs+=("$run $spec"); done
done
for chain in 0 1; do
  { for i in "${!jobs[@]}"; do
      if [ $((i % 2)) = $chain ]; then arm ${jobs[$i]}; fi
    done; } &
done
wait
