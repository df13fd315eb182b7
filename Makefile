# make lab  : install everything into .venv (first time only), then open JupyterLab on notebooks/
# make test : install everything into .venv (first time only), then lint and run every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel on our development machines' disk; elsewhere pip takes PyPI's build of the
# same version (CUDA on Linux). Any torch >= 2.4 works: `make lab TORCH=torch` to float.
TORCH ?= torch==2.13.0
LAB_ARGS ?=

.PHONY: lab test install lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-installs whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[local,test]"
	touch $@

install: $(VENV)/.installed

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
