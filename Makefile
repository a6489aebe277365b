# Two commands do all set-up on a fresh machine:
#   make run    - creates .venv if needed, then starts the bot (console chat when no token is set)
#   make test   - creates .venv if needed, then runs the whole test suite
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test setup clean

run: $(STAMP)
	$(PY) -m bot

test: $(STAMP)
	$(PY) -m pytest

setup: $(STAMP)

# torch's CPU build goes in first, or pip would fetch a multi-GB CUDA build for sentence-transformers.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) data
