# The README's two commands: `make demo` (the whole loop on the bundled tiny model) and `make test`.
# The first run creates .venv and installs the project with the exact pins in constraints.txt;
# torch is installed first so that it stays the local CPU build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "torch==$$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' constraints.txt)"
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev,onnx]"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/meme demo --out demo

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache
