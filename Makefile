# The README's two commands: `make demo` (the whole loop on the bundled tiny model) and `make test`.
# The first run creates .venv and installs the project with the exact pins in constraints.txt;
# torch is installed first so that it stays the local CPU build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# `make gpu-check` runs on a machine with an NVIDIA GPU, with the Python that has its CUDA torch (README).
GPU_PYTHON ?= python3
STEP ?= all

.PHONY: demo test check lint format install clean gpu-check gpu-wheels

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "torch==$$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' constraints.txt)"
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,onnx,serve,ray,browser]"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/meme demo --out demo

# two workers, one core each (tests/conftest.py), each test file on one worker so its fixtures are built once
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

# ruff's lint and format check (pyproject.toml's [tool.ruff]); `make format` rewrites what the check refuses
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# the inner loop: lint, then the tests that need no training, export or other process (a few minutes)
check: lint
	$(PY) -m pytest -q -n 2 --dist loadfile -m "not gpu and not slow"

gpu-wheels: $(STAMP)
	$(PY) benchmarks/gpu_check.py download

gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py run --step $(STEP) --python $(GPU_PYTHON)

clean:
	rm -rf $(VENV) .pytest_cache .gpu-site
