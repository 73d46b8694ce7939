# Everything a fresh machine needs: `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-tf test-jax test-slow lint format bench bench-tfmot clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/keras-lottery demo --out demo_runs

# The TensorFlow suite and the backend-neutral tests on JAX run side by side: each
# is mostly single-threaded (Python, tracing, XLA compiles), so together they use
# both cores; each suite's output is printed when it finishes. One op thread per
# suite: two suites with a thread pool each oversubscribe 2 cores. Measured on this
# 2-core machine from a fresh clone, nothing else running (2026-11-29): 8 min 23 s
# for `make test` including the venv install (TF suite 598 passed in 7:09, JAX
# suite 343 passed in 4:45, side by side). Tests over 20 s are marked slow and run
# by `make test-slow`.
test: lint
	$(MAKE) --no-print-directory --output-sync=target -j2 test-tf test-jax

PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider

test-tf: $(STAMP)
	mkdir -p .pytest-tmp
	TF_NUM_INTRAOP_THREADS=1 KERAS_BACKEND=tensorflow $(PYTEST) \
		--basetemp=.pytest-tmp/tensorflow -m "not slow"

# The backend-neutral tests (layers, pruning, CS, stability, ...) again on JAX.
test-jax: $(STAMP)
	mkdir -p .pytest-tmp
	XLA_FLAGS=--xla_cpu_multi_thread_eigen=false KERAS_BACKEND=jax $(PYTEST) \
		--basetemp=.pytest-tmp/jax -m "backend_neutral and not slow"

# Tests over 20 s (marked slow): ResNet-50 conversions, real-data integration.
test-slow: $(STAMP)
	mkdir -p .pytest-tmp
	TF_NUM_INTRAOP_THREADS=1 KERAS_BACKEND=tensorflow $(PYTEST) \
		--basetemp=.pytest-tmp/slow -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Performance benchmarks (docs/benchmarks.md): ratios against baselines measured in
# the same process; one JSON per benchmark under $(BENCH_OUT). 13 minutes on
# 2 shared CPU cores (load 4-6). bench-tfmot is separate: it needs its own environment.
BENCH_OUT ?= benchmarks/results
bench: $(STAMP)
	$(BIN)/python benchmarks/masked_overhead.py --repeats 15 --resnet-repeats 5 --ops \
		--json $(BENCH_OUT)/masked_overhead.json
	$(BIN)/python benchmarks/imp_bookkeeping.py --json $(BENCH_OUT)/imp_bookkeeping.json
	$(BIN)/python benchmarks/global_pruning.py --json $(BENCH_OUT)/global_pruning.json
	$(BIN)/python benchmarks/ticket_size.py --json $(BENCH_OUT)/ticket_size.json

# tensorflow-model-optimization needs tf_keras (Keras 2): a second environment with
# the pinned, tested set in benchmarks/requirements-tfmot.txt (PyPI only).
VENV_TFMOT ?= .venv-tfmot
TFMOT_STAMP := $(VENV_TFMOT)/.installed

$(TFMOT_STAMP): benchmarks/requirements-tfmot.txt
	$(PYTHON) -m venv $(VENV_TFMOT)
	$(VENV_TFMOT)/bin/python -m pip install --quiet --no-deps -r benchmarks/requirements-tfmot.txt
	touch $(TFMOT_STAMP)

bench-tfmot: $(TFMOT_STAMP)
	TF_USE_LEGACY_KERAS=1 $(VENV_TFMOT)/bin/python benchmarks/tfmot_overhead.py \
		--json $(BENCH_OUT)/tfmot_overhead.json --compare $(BENCH_OUT)/masked_overhead.json

clean:
	rm -rf $(VENV) $(VENV_TFMOT) demo_runs .pytest_cache .pytest-tmp .ruff_cache *.egg-info
