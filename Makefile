# Two commands on a fresh machine:  `make demo` (the main job)  and  `make test` (the test suite).
# Both create .venv and install the pinned dependencies on first use.
PY     ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat .ci/requirements.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup demo test test-fast lint bench gpu-check clean-venv

$(STAMP): .ci/requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r .ci/requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

demo: $(STAMP)        ## quantize tiny SAM 2 (W8A8) on the bundled photos, export ONNX, validate on onnxruntime
	$(BIN)/sam2-quant run

# pytest-xdist: one worker per core (at most 4; idle workers steal queued tests); tests/conftest.py shares the cores out among the workers'
# torch and onnxruntime thread pools. PYTEST_WORKERS=0 runs the suite in this process (for pdb).
PYTEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --maxprocesses 4 --dist worksteal

test: $(STAMP)        ## ruff + mypy (public API, [tool.mypy] in pyproject.toml) + the whole test suite (slow tests included)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/mypy
	$(PYTEST)

test-fast: $(STAMP)   ## the suite without the slow tests
	$(PYTEST) -m "not slow"

lint: $(STAMP)        ## ruff + mypy
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)       ## CPU EP latency/size/parity table -> docs/BENCHMARKS.md
	$(BIN)/sam2-quant bench --doc docs/BENCHMARKS.md

gpu-check: $(STAMP)   ## on a GPU machine (torch+CUDA, onnxruntime-gpu): MatMulNBits 2/4/8 on the CUDA EP, CDPQ on CUDA at 1024 px, bench CUDA EP rows
	$(BIN)/python benchmarks/gpu_check.py --out runs

clean-venv:
	rm -rf $(VENV)
