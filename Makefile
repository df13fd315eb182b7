# make lab  : install everything into .venv (first time only), then open JupyterLab on notebooks/
# make test : install everything into .venv (first time only), then lint, the fast tests and the notebooks
# make test-all : make test plus the slow tier (whole tours, browser, load, full fuzzing): what CI runs
# make test-oldest : the fast tests and notebook 06 against the lowest versions pyproject.toml declares (.venv-oldest)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel on our development machines' disk; elsewhere pip takes PyPI's build of the
# same version (CUDA on Linux). Any torch >= 2.4 works: `make lab TORCH=torch` to float.
TORCH ?= torch==2.13.0
# Jupyter refuses to run as root (containers, cloud VMs) unless told it may.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: lab test test-all test-oldest notebooks notebook-copies install lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-installs whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[local,test]"
	touch $@

# JupyterLab settings for this venv only: no news question and no update check (a learner needs
# neither toast over the notebook). tests/lab_server.py gives its servers the same overrides.
LAB_OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.d/flexaudio.json
$(LAB_OVERRIDES): | $(VENV)/.installed
	mkdir -p $(dir $@)
	echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' > $@

install: $(VENV)/.installed $(LAB_OVERRIDES)

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The notebooks run under nbmake on copies (the committed notebooks stay without outputs), in the
# same pytest session as the tests: tests/conftest.py gives them their environment (the offline
# model, fake secrets) and keeps them and the scan of their outputs in one worker, in order.
NB_RUN := test-artifacts/notebooks
UNDER_NBMAKE := $(NB_RUN) --nbmake --nbmake-timeout=300 --overwrite

# Two pytest-xdist workers, a file each at a time (a module's fixtures stay in one process), in
# conftest's order (--no-loadscope-reorder: xdist's own puts the files with the most tests first,
# which left the notebooks and the tours, the longest units of work, to the end). On our 2-core
# machines `make test` took 3 min 45 s this way, against about 5 min 20 s with the notebooks after.
WORKERS ?= 2
PARALLEL := -n $(WORKERS) --dist loadfile --no-loadscope-reorder

# One thread each for torch in every process under test: the two workers, their servers and kernels
# already fill both cores, and torch's own threads only fought over them (make test: 3 min 06 s with
# one thread, 3 min 45 s without).
test test-all: export OMP_NUM_THREADS = 1

notebook-copies: install
	rm -rf test-artifacts/notebooks test-artifacts/state
	mkdir -p $(NB_RUN) && cp notebooks/*.ipynb $(NB_RUN)/
	$(BIN)/nbstripout --verify notebooks/*.ipynb

test: lint notebook-copies
	$(BIN)/pytest $(PARALLEL) --durations=10 tests $(UNDER_NBMAKE)

# The slow tier is marked @pytest.mark.slow; RUN_SLOW=1 runs it (tests/conftest.py) and gives
# Hypothesis its full size. Both tiers share the two workers: the whole tours wait on kernels,
# servers and the browser much of the time, and the other files fill that time.
test-all: lint notebook-copies
	RUN_SLOW=1 $(BIN)/pytest $(PARALLEL) --durations=25 tests $(UNDER_NBMAKE)

# The notebooks alone, then the scan of their outputs.
notebooks: notebook-copies
	$(BIN)/pytest --durations=0 $(UNDER_NBMAKE) tests/test_notebook_outputs.py

# The lowest declared versions, installed exactly, in a venv of their own. The packages below get
# their pyproject.toml `>=` bound as `==` in a pip constraints file; everything else floats.
# torch is pinned to $(TORCH), not to its declared bound: the only torch on our machines' disk is
# the 2.13.0 CPU wheel, and PyPI's Linux torch is a CUDA build of several GB, so torch's own lower
# bound (2.4) is not tested here.
OLDEST_VENV ?= .venv-oldest
OLDEST_BIN := $(OLDEST_VENV)/bin
OLDEST_PACKAGES := diffusers transformers accelerate torchsde sentencepiece httpx pydantic fastapi uvicorn
OLDEST_TESTS := tests/test_params.py tests/test_queue.py tests/test_speed_options.py \
	tests/test_endpoint.py $(wildcard tests/test_client*.py)
# Notebook 06's plain diffusers cells (from_pretrained(..., dtype=) is why diffusers' floor is 0.40),
# then the clean-up notebook, which stops the server that 06 starts.
OLDEST_NOTEBOOKS := $(wildcard notebooks/06_*.ipynb) $(wildcard notebooks/*_cleanup.ipynb)
OLDEST_RUN := test-artifacts/oldest
empty :=
OLDEST_NAMES := $(subst $(empty) $(empty),|,$(strip $(OLDEST_PACKAGES)))

$(OLDEST_VENV)/constraints.txt: pyproject.toml
	mkdir -p $(OLDEST_VENV)
	sed -nE 's/^ *"($(OLDEST_NAMES))>=([^"]+)".*/\1==\2/p' pyproject.toml > $@.bounds
	@test $$(wc -l < $@.bounds) -eq $(words $(OLDEST_PACKAGES)) || \
		{ echo "pyproject.toml lacks a '>=' bound for one of: $(OLDEST_PACKAGES)"; exit 1; }
	{ echo "$(TORCH)"; cat $@.bounds; } > $@ && rm $@.bounds

$(OLDEST_VENV)/.installed: $(OLDEST_VENV)/constraints.txt
	test -x $(OLDEST_BIN)/python || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_BIN)/python -m pip install --quiet --upgrade pip
	$(OLDEST_BIN)/python -c "import torch" 2>/dev/null || $(OLDEST_BIN)/python -m pip install "$(TORCH)"
	$(OLDEST_BIN)/python -m pip install --quiet -c $(OLDEST_VENV)/constraints.txt -e ".[local,test]"
	touch $@

test-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_BIN)/python -m pip list --format=freeze | grep -iE '^(torch|numpy|$(OLDEST_NAMES))=='
	rm -rf $(OLDEST_RUN) test-artifacts/state && mkdir -p $(OLDEST_RUN) && cp $(OLDEST_NOTEBOOKS) $(OLDEST_RUN)/
	$(OLDEST_BIN)/pytest -q -p no:cacheprovider --durations=5 $(OLDEST_TESTS) \
		$(OLDEST_RUN) --nbmake --nbmake-timeout=300 --overwrite

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .pytest_cache .ruff_cache test-artifacts
