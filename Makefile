# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck fixtures bench bytecode clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# pyOpenSSL ships its own types; the old stub package (once a test dependency) would
	# shadow them in a venv made before.
	$(PY) -m pip uninstall --quiet --yes types-pyOpenSSL 2>/dev/null || true
	$(MAKE) bytecode
	touch $(STAMP)

# Compiled bytecode for the gateway's own modules, as pip writes it for an installed
# package: without it each command compiles them again at start (also when Python is told
# not to write bytecode, it still reads it).
bytecode:
	$(PY) -m compileall -q gateway adapters

demo: $(STAMP)
	$(VENV)/bin/igo-gateway demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

fixtures: $(STAMP)
	$(PY) fixtures/generate.py

bench: $(STAMP) bytecode
	$(PY) -m tests.benchmarks.codec

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
