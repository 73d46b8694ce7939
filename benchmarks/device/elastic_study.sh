#!/usr/bin/env bash
# The Elastic LTH study on one GPU with JAX and no TensorFlow, within one device call:
#   1. IMP on ResNet-20 and ResNet-32 (ROUNDS rounds of FRACTION each: 3 x 0.44 leave
#      17.6% of the weights), SEEDS seeds, all side by side (rewinding_study.py);
#   2. per seed, ResNet-20's last round stretched to ResNet-32 (inter) and trained with
#      controls random_prune and permute_copies, and ResNet-32's squeezed to ResNet-20
#      with random_prune, all side by side (elastic_study.py elastic);
#   3. summary.json (elastic_study.py summarize): IMP rounds (dense accuracy = round 0)
#      and every elastic arm, with epochs and wall times for the cost comparison.
#
# Run from the repository root on the device machine, with the Keras wheel and its
# missing dependencies in .whl/ and the CIFAR-10 subset in .devdata/ (both carried):
#   bash benchmarks/device/elastic_study.sh            # results under $OUT
# Every phase (IMP round, elastic arm) is DURATION (default 20ep of 36 steps) with lr
# x0.1 at MILESTONES, rewinding to REWIND (1ep). Each process is stopped at its
# *_LIMIT seconds (IMP 270 + elastic 210 = 8 min at most); finished phases are kept
# and summarized every 20 s, and the elastic stage transforms each source run's last
# finished round (ROUNDS when IMP finished in time; summary.json says which).
# CPU smoke test (tiny; docs/elastic.md gives the command): DURATION=1ep ROUNDS=1
# SEEDS=0 EXTRA_SETS="data.train_size=256 data.validation_size=64" PY=.venv/bin/python
set -u
OUT=${OUT:-/tmp/elastic_out}
mkdir -p "$OUT"
STUDY=${STUDY:-/tmp/elastic_study}
DATA=${DATA:-.devdata/cifar10_subset.npz}
DURATION=${DURATION:-20ep}
MILESTONES=${MILESTONES:-[14ep, 17ep]}
REWIND=${REWIND:-1ep}
ROUNDS=${ROUNDS:-3}
FRACTION=${FRACTION:-0.44}
SEEDS=${SEEDS:-0 1 2}
SOURCE=${SOURCE:-cifar_resnet_20}
TARGET=${TARGET:-cifar_resnet_32}
IMP_LIMIT=${IMP_LIMIT:-270}
ELASTIC_LIMIT=${ELASTIC_LIMIT:-210}
PY=${PY:-python3}
source benchmarks/device/setup_env.sh

pack() {
  tar czf "$OUT/.runs.tgz" --exclude='*.npz' --exclude='*.png' -C "$STUDY" . 2>/dev/null
  [ $? -le 1 ] && mv "$OUT/.runs.tgz" "$OUT/runs.tgz"
  $PY benchmarks/device/elastic_study.py summarize "$STUDY" > "$OUT/.summary.json" \
    && mv "$OUT/.summary.json" "$OUT/summary.json"
}
wait_all() {
  while [ -n "$(jobs -r)" ]; do
    sleep "${POLL:-20}"; pack
    echo "[$(( $(date +%s) - began )) s] $1: $(cat "$STUDY"/logs/*.log 2>/dev/null | grep -c '\[keras_lottery\] \(round\|elastic\)') phases done"
  done
  wait
  pack
}

mkdir -p "$STUDY/imp" "$STUDY/elastic" "$STUDY/logs"
began=$(date +%s)
common=(--set "training.duration=$DURATION" --set "training.milestones=$MILESTONES"
        --set "pruning.rounds=$ROUNDS" --set "pruning.fraction=$FRACTION")
extra=()  # EXTRA_SETS: further space-separated overrides (no spaces inside one)
for setting in ${EXTRA_SETS:-}; do extra+=(--set "$setting"); done
for seed in $SEEDS; do
  for model in "$SOURCE" "$TARGET"; do
    timeout "$IMP_LIMIT" $PY benchmarks/device/rewinding_study.py \
      --data "$DATA" --seed "$seed" --rewind "$REWIND" --out "$STUDY/imp" \
      --set "model.name=$model" "${common[@]}" "${extra[@]}" \
      > "$STUDY/logs/imp_${model}_seed${seed}.log" 2>&1 &
  done
done
wait_all "IMP"
echo "IMP wall time: $(( $(date +%s) - began )) s"

elastic() {  # source target seed controls...
  local source=$1 target=$2 seed=$3; shift 3
  local flags=()
  for control in "$@"; do flags+=(--control "$control"); done
  timeout "$ELASTIC_LIMIT" $PY benchmarks/device/elastic_study.py elastic \
    --imp-runs "$STUDY/imp" --model "$source" --seed "$seed" --round -1 \
    --to "$target" --out "$STUDY/elastic" "${flags[@]}" \
    > "$STUDY/logs/elastic_${source}_to_${target}_seed${seed}.log" 2>&1
}
for seed in $SEEDS; do
  elastic "$SOURCE" "$TARGET" "$seed" random_prune permute_copies &
  elastic "$TARGET" "$SOURCE" "$seed" random_prune &
done
wait_all "elastic"
echo "study wall time: $(( $(date +%s) - began )) s"
tail -n 2 "$STUDY"/logs/*.log
