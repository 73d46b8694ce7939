#!/usr/bin/env bash
# Short versions of every documented command (README, docs/stability.md), to show
# that a change of the code leaves every output file the same: run it on two
# checkouts and compare the two output folders with compare_trees.py.
# usage: short_commands.sh SRC_DIR OUT_DIR   (SRC_DIR: a checkout of the project;
# the .venv of this checkout runs it, with SRC_DIR first on PYTHONPATH)
set -euo pipefail
SRC=$1; OUT=$2
export PYTHONPATH=$SRC TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 KERAS_BACKEND=tensorflow
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONHASHSEED=0
PY=${PYTHON:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}
KL="$PY -m keras_lottery.cli"
DATA=${DATA:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/data}
mkdir -p "$OUT"; cd "$OUT"
$PY -c "import keras_lottery; print(keras_lottery.__file__)" > which.txt
IMP="--set data.path=$DATA/mnist_subset.npz --set data.train_size=2000 --set pruning.rounds=2 --set training.duration=300it --set data.validation_size=1000"
CS="--set data.path=$DATA/cifar10_subset.npz --set data.train_size=256 --set data.validation_size=128 --set training.duration=2ep --set training.milestones=[] --set cs.rounds=2 --set cs.rewind=1ep --set training.batch_size=64"
{
echo "== demo"; $KL demo --out demo_runs
echo "== run imp"; $KL run $SRC/configs/lenet_mnist.yaml $IMP --out runs
IMPDIR=$(ls -d runs/imp_* | head -1)
echo "== report"; $KL report $IMPDIR
echo "== instability"; $KL instability $IMPDIR --round 1 --pairs 1 --points 5 --set stability.train_eval_limit=500
echo "== branch"; $KL branch $IMPDIR --round 1 --kind shuffle_masks
echo "== rewind-sweep"; $KL rewind-sweep $SRC/configs/lenet_mnist.yaml --rewinds 0,50it --round 1 $IMP --pairs 1 --points 5 --set stability.train_eval_limit=500 --out sweeps
echo "== run cs"; $KL run $SRC/configs/cs_resnet20_cifar10.yaml $CS --out runs
CSDIR=$(ls -d runs/cs_* | head -1)
echo "== from-search"; $KL run $SRC/configs/cs_resnet20_cifar10.yaml $CS --set cs.target_sparsity=0.5 --from-search $CSDIR --out runs
echo "== sweep"; $KL sweep $SRC/configs/cs_resnet20_cifar10.yaml $CS --set cs.rounds=1 --grid 'cs.mask_initial_value=[-0.1, 0.1]' --jobs 1 --out runs
echo "== compare"; $KL compare $IMPDIR $CSDIR --out compare
echo "== print-config"; $KL run $SRC/configs/cs_resnet20_cifar10.yaml $CS --print-config --out runs
} > log.txt 2> stderr.txt
echo done
