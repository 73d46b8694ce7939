#!/usr/bin/env bash
# The ResNet-20 rewinding study (IMP, k = 0 vs k = 1 epoch, 10 rounds, 3 seeds) on one
# GPU with JAX and no TensorFlow, all six runs side by side, within one device call.
#
# Run from the repository root on the device machine, with the Keras wheel and its
# missing dependencies in .whl/ and the CIFAR-10 subset in .devdata/ (both carried):
#   bash benchmarks/device/rewinding_study.sh            # results under $OUT
# Budget per phase: DURATION (default 30ep of 36 steps) with lr x0.1 at 2/3 and 5/6.
# Each run is stopped at RUN_LIMIT seconds; finished rounds are kept (and packed into
# $OUT every 20 s), so a stopped study still returns every finished round.
set -u
OUT=${OUT:-/tmp/study_out}
mkdir -p "$OUT"
STUDY=/tmp/study
DURATION=${DURATION:-30ep}
MILESTONES=${MILESTONES:-[20ep, 25ep]}
RUN_LIMIT=${RUN_LIMIT:-470}
SEEDS=${SEEDS:-0 1 2}
REWINDS=${REWINDS:-0it 1ep}

source benchmarks/device/setup_env.sh

pack() {
  # exit status 1 = a file changed while being read (a run is writing): still usable
  tar czf "$OUT/.runs.tgz" --exclude='*.npz' --exclude='*.png' -C /tmp study 2>/dev/null
  [ $? -le 1 ] && mv "$OUT/.runs.tgz" "$OUT/runs.tgz"
  python3 benchmarks/device/summarize_study.py "$STUDY/runs" > "$OUT/.summary.json" \
    && mv "$OUT/.summary.json" "$OUT/summary.json"
}

mkdir -p "$STUDY/runs" "$STUDY/logs"
began=$(date +%s)
for seed in $SEEDS; do
  for rewind in $REWINDS; do
    timeout "$RUN_LIMIT" python3 benchmarks/device/rewinding_study.py \
      --data .devdata/cifar10_subset.npz --seed "$seed" --rewind "$rewind" \
      --out "$STUDY/runs" --set "training.duration=$DURATION" \
      --set "training.milestones=$MILESTONES" ${EXTRA_SET:+--set "$EXTRA_SET"} \
      > "$STUDY/logs/seed${seed}_k${rewind}.log" 2>&1 &
  done
done
while [ -n "$(jobs -r)" ]; do sleep 20; pack; echo "[$(( $(date +%s) - began )) s] $(grep -h 'round' $STUDY/logs/*.log | grep -c 'weights remaining') rounds done"; done
wait
pack
echo "study wall time: $(( $(date +%s) - began )) s"
tail -n 3 "$STUDY"/logs/*.log
