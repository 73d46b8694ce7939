#!/usr/bin/env bash
# The GPU device check (benchmarks/device/device_check.py): masked vs plain step time
# of ResNet-20 (CIFAR, batch 128) and ResNet-50 (224x224, batch 64) in mixed_bfloat16
# with jit, one IMP round and one CS search round on the CIFAR-10 subset; one JSON.
#
# For a machine with one NVIDIA GPU, JAX and no TensorFlow or internet. Run from the
# repository root with the Keras wheel (+ namex, optree) in .whl/ and
# cifar10_subset.npz in .devdata/ (both carried):
#   bash benchmarks/device_check.sh                 # -> $OUT/device_check.json
# CPU rehearsal (tiny sizes): TINY=1 INSTALL_WHEELS=0 bash benchmarks/device_check.sh
# The whole check is stopped at LIMIT seconds (default 450); finished sections are
# already in the JSON (it is rewritten atomically after each section).
set -u
OUT=${OUT:-/tmp/device_check_out}
mkdir -p "$OUT"
LIMIT=${LIMIT:-450}
DATA=${DATA:-.devdata/cifar10_subset.npz}

source benchmarks/device/setup_env.sh

began=$(date +%s)
timeout "$LIMIT" python3 benchmarks/device/device_check.py \
  --json "$OUT/device_check.json" --data "$DATA" --runs /tmp/device_check_runs \
  ${TINY:+--tiny} ${EXTRA_ARGS:-} 2>&1 | tee "$OUT/device_check.log"
status=${PIPESTATUS[0]}
echo "device check: exit $status after $(( $(date +%s) - began )) s"
exit "$status"
