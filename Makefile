# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck fixtures bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# pyOpenSSL ships its own types; the old stub package (once a test dependency) would
	# shadow them in a venv made before.
	$(PY) -m pip uninstall --quiet --yes types-pyOpenSSL 2>/dev/null || true
	touch $(STAMP)

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

bench: $(STAMP)
	$(PY) -m tests.benchmarks.codec

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
