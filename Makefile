# Everything a fresh machine needs: `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-lane-1 test-lane-2 test-tf test-jax test-torch test-slow test-multiworker drills lint format bench bench-export bench-tfmot clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/keras-lottery demo --out demo_runs

# `make test` runs the TensorFlow suite, and the tests whose behaviour differs per
# backend (marked backend_core: layers, pruning, tickets, rewinds, IMP/CS drivers,
# interpolation, schedules) on JAX and on PyTorch, in two lanes side by side: each
# suite is mostly single-threaded (Python, tracing, XLA compiles), so two lanes use
# both cores; one op thread per suite, as two thread pools oversubscribe 2 cores.
# The JAX and PyTorch runs are the shorter, so their lane also runs a few
# end-to-end TensorFlow files (LANE_1_TF) and the lanes end close together. Each
# lane's output is printed when it finishes. Tests over 20 s are marked slow and
# run by `make test-slow`; every backend_neutral test runs on JAX in `make
# test-jax` and on PyTorch in `make test-torch`. The two cluster tests (2
# tf.distribute workers; a Keras Tuner chief + 2 workers) run 3-5 processes each
# for about 40 s, slowing the other lane meanwhile. Measured from a fresh clone on
# this 2-core machine, nothing else running (2026-11-30, fifth session): `bash
# .ci/run` 8 min 18 s including the venv install and lint (~1.8 min, PyTorch's CPU
# wheel included); lane 1 = 247 backend_core tests on JAX in 1:54, the same on
# PyTorch in 0:13, then 79 TF tests in 4:18; lane 2 = 840 TF tests in 6:15. Runs of one commit varied by
# up to 1.5 min here: new tests over ~20 s go behind `slow`.
test: lint
	$(MAKE) --no-print-directory --output-sync=target -j2 test-lane-1 test-lane-2

PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider
TF_TESTS := TF_NUM_INTRAOP_THREADS=1 KERAS_BACKEND=tensorflow $(PYTEST) -m "not slow"
JAX_ENV := XLA_FLAGS=--xla_cpu_multi_thread_eigen=false KERAS_BACKEND=jax
TORCH_ENV := OMP_NUM_THREADS=1 KERAS_BACKEND=torch
NEUTRAL := -m "backend_neutral and not slow"
CORE := -m "backend_core and not slow and not core_covered"
# Only the files that hold backend_core tests: collecting the whole suite costs
# the JAX and PyTorch runs about 15 s each.
CORE_FILES := $(sort $(shell grep -rl backend_core tests --include='test_*.py'))
LANE_1_TF := tests/test_cli.py tests/test_examples.py tests/test_benchmarks.py \
	tests/runs/test_tuning.py tests/drills/test_kill_resume.py \
	tests/runs/test_elastic.py tests/test_backends.py tests/runs/test_tuner_sweep.py \
	tests/test_distributed.py tests/test_jax_distribution.py tests/test_device_study.py \
	tests/runs/test_rewind_sweep.py tests/export/test_saved_model.py

test-lane-1: $(STAMP)
	mkdir -p .pytest-tmp
	$(JAX_ENV) $(PYTEST) $(CORE) --basetemp=.pytest-tmp/jax $(CORE_FILES)
	$(TORCH_ENV) $(PYTEST) $(CORE) --basetemp=.pytest-tmp/torch $(CORE_FILES)
	$(TF_TESTS) --basetemp=.pytest-tmp/tensorflow-1 $(LANE_1_TF)

test-lane-2: $(STAMP)
	mkdir -p .pytest-tmp
	$(TF_TESTS) --basetemp=.pytest-tmp/tensorflow-2 $(addprefix --ignore=,$(LANE_1_TF))

# The whole TensorFlow suite, and every backend-neutral test (layers, pruning, CS,
# analysis, run folders, reports, ...) again on JAX and on PyTorch.
test-tf: $(STAMP)
	mkdir -p .pytest-tmp
	$(TF_TESTS) --basetemp=.pytest-tmp/tensorflow

test-jax: $(STAMP)
	mkdir -p .pytest-tmp
	$(JAX_ENV) $(PYTEST) $(NEUTRAL) --basetemp=.pytest-tmp/jax

test-torch: $(STAMP)
	mkdir -p .pytest-tmp
	$(TORCH_ENV) $(PYTEST) $(NEUTRAL) --basetemp=.pytest-tmp/torch

# Tests over 20 s (marked slow): ResNet-50 conversions, real-data integration.
test-slow: $(STAMP)
	mkdir -p .pytest-tmp
	TF_NUM_INTRAOP_THREADS=1 KERAS_BACKEND=tensorflow $(PYTEST) \
		--basetemp=.pytest-tmp/slow -m "slow and not drills"

# Clusters of processes on 127.0.0.1 (docs/distributed.md): 2 tf.distribute
# workers vs one process (IMP + branch, CS + GradualPruning, a killed worker and
# a relaunch) and Keras Tuner's chief + 2 workers (a killed worker too). `make
# test` runs the 2-worker IMP and the chief + 2 workers sweep (about 40 s each on
# the quiet machine); the others are also marked slow.
test-multiworker: $(STAMP)
	mkdir -p .pytest-tmp
	TF_NUM_INTRAOP_THREADS=1 KERAS_BACKEND=tensorflow $(PYTEST) \
		--basetemp=.pytest-tmp/multiworker -m multiworker \
		tests/test_distributed.py tests/runs/test_tuner_sweep.py

# The reliability drills (tests/drills, docs/reliability.md): kill -9 at many
# points of IMP, CS and a branch, then resume; corrupt files; bad inputs. `make
# test` runs the ones not marked slow.
drills: $(STAMP)
	mkdir -p .pytest-tmp
	TF_NUM_INTRAOP_THREADS=1 KERAS_BACKEND=tensorflow $(PYTEST) \
		--basetemp=.pytest-tmp/drills -m drills tests/drills

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Performance benchmarks (docs/benchmarks.md): ratios against baselines measured in
# the same process; one JSON per benchmark under $(BENCH_OUT). 13 minutes (27 with
# bench-export) on 2 shared CPU cores (load 4-6). bench-tfmot is separate: it needs
# its own environment.
BENCH_OUT ?= benchmarks/results
bench: $(STAMP)
	$(BIN)/python benchmarks/masked_overhead.py --repeats 15 --resnet-repeats 5 --ops \
		--json $(BENCH_OUT)/masked_overhead.json
	$(BIN)/python benchmarks/imp_bookkeeping.py --json $(BENCH_OUT)/imp_bookkeeping.json
	$(BIN)/python benchmarks/global_pruning.py --json $(BENCH_OUT)/global_pruning.json
	$(BIN)/python benchmarks/ticket_size.py --json $(BENCH_OUT)/ticket_size.json
	$(MAKE) --no-print-directory bench-export

# Export formats: bytes and CPU latency per format (docs/export.md); 14 minutes on
# this 2-core machine under load 4-5 (MobileNetV2 is most of it).
bench-export: $(STAMP)
	TF_NUM_INTRAOP_THREADS=1 $(BIN)/python benchmarks/export_formats.py --repeats 5 \
		--structured --json $(BENCH_OUT)/export_formats.json

# tensorflow-model-optimization needs tf_keras (Keras 2): a second environment with
# the pinned, tested set in benchmarks/requirements-tfmot.txt (PyPI only).
VENV_TFMOT ?= .venv-tfmot
TFMOT_STAMP := $(VENV_TFMOT)/.installed

$(TFMOT_STAMP): benchmarks/requirements-tfmot.txt
	$(PYTHON) -m venv $(VENV_TFMOT)
	$(VENV_TFMOT)/bin/python -m pip install --quiet --no-deps -r benchmarks/requirements-tfmot.txt
	touch $(TFMOT_STAMP)

bench-tfmot: $(TFMOT_STAMP) $(STAMP)
	TF_USE_LEGACY_KERAS=1 $(VENV_TFMOT)/bin/python benchmarks/tfmot_overhead.py \
		--json $(BENCH_OUT)/tfmot_overhead.json --compare $(BENCH_OUT)/masked_overhead.json
	TF_NUM_INTRAOP_THREADS=1 $(BIN)/python benchmarks/gradual_overhead.py --repeats 8 \
		--json $(BENCH_OUT)/gradual_overhead.json
	TF_NUM_INTRAOP_THREADS=1 TF_USE_LEGACY_KERAS=1 $(VENV_TFMOT)/bin/python \
		benchmarks/tfmot_overhead.py --gradual --repeats 8 \
		--json $(BENCH_OUT)/tfmot_gradual.json --compare $(BENCH_OUT)/gradual_overhead.json

clean:
	rm -rf $(VENV) $(VENV_TFMOT) demo_runs .pytest_cache .pytest-tmp .ruff_cache *.egg-info
