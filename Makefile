# `make test` and `make demo` work from a clean clone: they create .venv and install the package when needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-gpu-versions lint demo demo-compare bench gpu-session static-report clean

install: $(STAMP)

# Reinstall whenever the package metadata changes.
$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

# One pytest-xdist worker per core, a test file at a time (its module fixtures built once), the files in the order of
# the collection, where tests/conftest.py puts the `slow` tests first: the longest files start first. (Not loadgroup:
# with pytest 9.2 it silently stops grouping, pytest-xdist issue 1386.)
XDIST := -n logical --dist loadfile --no-loadscope-reorder

# The 20 slowest tests are listed at the end: the suite must stay under 40 minutes on CI's 2 cores.
test: lint
	$(PY) -m pytest $(XDIST) --durations=20

# The lent GPU machine's versions (torch 2.11.0, triton 3.6.0), checked on a CPU: the kernels' tests through that
# Triton's interpreter (which needs numpy < 2.3) and their ahead-of-time compile for Hopper, the GPU session's dry run
# (every unit's plumbing on those versions, before the one try on the GPU) and that the JIT finds the kernels its
# compile-cache step compiles ahead. Downloads ~4.6 GB once.
GPU_VERSIONS_VENV := .venv-torch2.11

test-gpu-versions:
	test -x $(GPU_VERSIONS_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VERSIONS_VENV)
	$(GPU_VERSIONS_VENV)/bin/python -m pip install -e '.[dev]' torch==2.11.0 'numpy<2.3'
	$(GPU_VERSIONS_VENV)/bin/python -m pytest $(XDIST) tests/kernels tests/test_gpu_session.py \
		tests/profiling/test_compile_cache.py

demo: $(STAMP)
	$(VENV)/bin/sca-mtl demo --out runs/demo

# The Δm workflow on the synthetic scenes: single-task runs, MTL baseline, MTI-Net, SCA-MTL, and their table.
demo-compare: $(STAMP)
	$(VENV)/bin/sca-mtl demo --compare --out runs/demo-compare

# Every benchmark says so and exits 0 without CUDA; the report then states that no GPU result exists.
BENCHMARKS := $(wildcard bench/bench_*.py)

bench: $(STAMP)
	@for script in $(BENCHMARKS); do echo "== $$script"; PYTHONPATH=. $(PY) $$script || exit 1; done
	PYTHONPATH=. $(PY) bench/report.py

# One prepared GPU session (bench/gpu_session.py): everything measured on one H100/H200 in under 8 minutes, into
# OUT (7 files, to carry back), then recorded in bench/results/ and the README. No .venv and no install: the lent GPU
# machines have the packages but no network, so it runs GPU_PYTHON (.venv's python where one exists, else python3).
GPU_PYTHON ?= $(if $(wildcard $(PY)),$(PY),$(PYTHON))

gpu-session:
	$(if $(OUT),,$(error usage: make gpu-session OUT=dir))
	PYTHONPATH=. $(GPU_PYTHON) bench/gpu_session.py --out $(OUT)

# Static cost report (no GPU): every Triton launch of one training step compiled for sm_90 and priced, for each Triton
# installed here (.venv's, and .venv-torch2.11's from test-gpu-versions when it exists; STATIC_TRITON_DIR=dir adds a
# triton installed with `pip install --target dir`), then the README section from the files in bench/results/static.
STATIC_TRITON_DIR ?=

static-report: $(STAMP)
	@for python in $(wildcard $(PY) $(GPU_VERSIONS_VENV)/bin/python); do $$python -m profiling.static_report || exit 1; done
	$(if $(STATIC_TRITON_DIR),PYTHONPATH=$(STATIC_TRITON_DIR) $(PY) -m profiling.static_report)
	$(PY) -m profiling.static_report --readme

clean:
	rm -rf $(VENV) $(GPU_VERSIONS_VENV) *.egg-info .pytest_cache .ruff_cache
