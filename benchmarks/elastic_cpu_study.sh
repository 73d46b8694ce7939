#!/usr/bin/env bash
# The Elastic LTH study at CPU scale (issue 15), TensorFlow backend, two processes of
# one thread each (2 cores). Per seed (SEEDS): one-shot IMP (ROUNDS x FRACTION: 1 x 0.8
# leaves 20% of the weights) on ResNet-20 and ResNet-32, then ResNet-20's ticket
# stretched to ResNet-32 (controls random_prune, permute_copies) and ResNet-32's squeezed
# to ResNet-20 (control random_prune). Every phase is DURATION with lr x0.1 at
# MILESTONES after a linear warm-up of WARMUP (ResNet-32 diverges in its first epoch at
# lr 0.1 without one), rewinding to epoch 1; otherwise the recipe of
# configs/resnet20_cifar10_subset.yaml.
#   bash benchmarks/elastic_cpu_study.sh           # run folders under $STUDY
#   python benchmarks/device/elastic_study.py summarize $STUDY > summary.json
# Chains: A = ResNet-20 IMP (all seeds), 32->20 (all seeds), 20->32 (last seed);
#         B = ResNet-32 IMP (all seeds), 20->32 (other seeds). Runs resume when re-run.
set -u
STUDY=${STUDY:-/tmp/elastic_cpu_study}
DURATION=${DURATION:-8ep}
MILESTONES=${MILESTONES:-[5ep, 7ep]}
WARMUP=${WARMUP:-1ep}
ROUNDS=${ROUNDS:-1}
FRACTION=${FRACTION:-0.8}
SEEDS=${SEEDS:-0 1 2}
CONFIG=${CONFIG:-configs/resnet20_cifar10_subset.yaml}
CLI=${CLI:-keras-lottery}
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 KERAS_BACKEND=tensorflow
export PYTHONUNBUFFERED=1
mkdir -p "$STUDY/imp" "$STUDY/elastic" "$STUDY/logs"
last_seed=${SEEDS##* }

common=(--set "training.duration=$DURATION" --set "training.milestones=$MILESTONES"
        --set "training.warmup=$WARMUP" --set "pruning.rounds=$ROUNDS"
        --set "pruning.fraction=$FRACTION")
imp() {  # model seed
  $CLI run "$CONFIG" --out "$STUDY/imp" --wait --set "model.name=$1" --set "seed=$2" \
    "${common[@]}" >> "$STUDY/logs/imp_$1_seed$2.log" 2>&1
}
run_of() {  # model seed -> the IMP run folder
  $CLI run "$CONFIG" --out "$STUDY/imp" --print-config --set "model.name=$1" \
    --set "seed=$2" "${common[@]}" 2>/dev/null | sed -n 's/^# run folder: //p'
}
wait_for() {  # model seed: until its last round is finished
  local record
  record="$(run_of "$1" "$2")/round_$(printf %03d "$ROUNDS")/record.json"
  until [ -f "$record" ]; do sleep 30; done
}
elastic() {  # source target seed controls...
  local source=$1 target=$2 seed=$3; shift 3
  local flags=()
  for control in "$@"; do flags+=(--control "$control"); done
  wait_for "$source" "$seed"
  $CLI elastic "$(run_of "$source" "$seed")" --round "$ROUNDS" --to "$target" \
    --out "$STUDY/elastic" "${flags[@]}" \
    >> "$STUDY/logs/elastic_${source}_to_${target}_seed${seed}.log" 2>&1
}
chain_a() {
  for seed in $SEEDS; do imp cifar_resnet_20 "$seed"; done
  for seed in $SEEDS; do elastic cifar_resnet_32 cifar_resnet_20 "$seed" random_prune; done
  elastic cifar_resnet_20 cifar_resnet_32 "$last_seed" random_prune permute_copies
}
chain_b() {
  for seed in $SEEDS; do imp cifar_resnet_32 "$seed"; done
  for seed in $SEEDS; do
    [ "$seed" = "$last_seed" ] && continue
    elastic cifar_resnet_20 cifar_resnet_32 "$seed" random_prune permute_copies
  done
}
began=$(date +%s)
chain_a & chain_b &
wait
echo "study wall time: $(( $(date +%s) - began )) s"
