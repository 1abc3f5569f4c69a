# Two commands do all the set-up on a fresh clone: `make repro` (the pipeline) and `make test` (the tests).
# Both create .venv/ from the hashed lock (requirements.txt) the first time (about 2 minutes), then reuse it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# the offline mirror and model cache beside the repository (../shared), when they are there
SHARED ?= $(abspath ../shared)
export SENTIMENT_MIRROR ?= $(if $(wildcard $(SHARED)/mirror),$(SHARED)/mirror)
export HF_HOME ?= $(if $(wildcard $(SHARED)/hf),$(SHARED)/hf)
export HF_HUB_OFFLINE ?= $(if $(wildcard $(SHARED)/hf),1)
export DVC_NO_ANALYTICS := 1
# dvc.yaml's commands say `python`: the venv's, whether or not it is activated
export PATH := $(abspath $(VENV))/bin:$(PATH)

# the hashed lock `make setup` installs (pip --require-hashes): requirements.txt (CPU torch) or
# requirements-cuda.txt (the CUDA build of the same torch): `make setup LOCK=requirements-cuda.txt`
LOCK ?= requirements.txt

.PHONY: help repro quick test test-quick lint pull setup lock plots-template

help:  ## each target with its note (`make repro` and `make test` do all the set-up)
	@awk -F ':.*## ' '/^[a-z-]+:.*## / {printf "  %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed  ## .venv/ from the hashed lock, every package pinned (repro, pull and test run it first)

# every package from the lock, each file checked against its hash; then the project itself, built with
# the lock's setuptools (no build isolation, so nothing unlocked is fetched)
$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# `make lock`: both locks regenerated from pyproject.toml's pins (the dev extra: runtime, review, postgres,
# tests, lint) by uv in a throwaway venv; versions already locked are kept unless a pin moved them
# (UV_ARGS=--upgrade for newer transitive releases). tests/test_lock.py fails when the pins and locks drift.
# The CPU build (constrained to torch==X.Y.Z+cpu) comes from TORCH_CPU_WHEELS (this machine's local wheel; elsewhere
# TORCH_CPU_SOURCE="--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match").
# Its line says torch==X.Y.Z, the hash picks the build, so a CUDA build of the same release already
# installed (benchmarks/gpu_check.sh) also satisfies it.
UV_VERSION := 0.13.10
LOCK_VENV := $(or $(TMPDIR),/tmp)/tweet-sentiment-lock-venv
TORCH_CPU_WHEELS ?= /opt/wheels
TORCH_CPU_SOURCE ?= --find-links $(TORCH_CPU_WHEELS)
UV_COMPILE = $(LOCK_VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --no-config \
	--python-version 3.11 --python-platform x86_64-manylinux_2_28 --custom-compile-command "make lock" $(UV_ARGS)

lock:  ## regenerate requirements.txt and requirements-cuda.txt (hashed locks) from pyproject.toml's pins
	test -x $(LOCK_VENV)/bin/uv || { $(PYTHON) -m venv $(LOCK_VENV) && \
		$(LOCK_VENV)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION); }
	sed -n 's/^ *"torch==\([0-9.]*\)".*/torch==\1+cpu/p' pyproject.toml > $(LOCK_VENV)/torch-cpu.txt
	$(UV_COMPILE) $(TORCH_CPU_SOURCE) -c $(LOCK_VENV)/torch-cpu.txt --quiet -o requirements.txt
	sed -i 's/^torch==\([0-9.]*\)+cpu /torch==\1 /' requirements.txt
	$(UV_COMPILE) --quiet -o requirements-cuda.txt

plots-template: setup  ## regenerate .dvc/plots_offline.html (vega inlined from npm: `dvc plots` pages draw offline)
	$(PY) -m scripts.plots_template

repro: setup  ## every stage on the full data with params.yaml (a second run does nothing)
	$(PY) -m src.core.containment  # no declared path is a link out of the repository: dvc repro would delete through it
	$(PY) -m dvc repro

quick: setup  ## every stage on a 3,000-tweet subset: an experiment, params.yaml untouched
	$(PY) -m src.core.containment
	$(PY) -m dvc exp run -S num_epochs=1 -S data.max_train_samples=3000 -S lstm.epochs=3 \
		-S tune.n_trials=1 -S tune.train_fraction=0.3

pull: setup  ## main's outputs from the team's DVC remote (or one line saying what to do without one)
	$(PY) -m src.pull

lint: setup  ## ruff check and ruff format --check over the tree
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: setup  ## everything CI runs: lint, then every test
	$(MAKE) --no-print-directory lint
	$(PY) -m pytest -q

test-quick: setup  ## the quick loop: skips the slowest end-to-end tests
	$(PY) -m pytest -q -m "not slow"
