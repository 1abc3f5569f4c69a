# Two commands do all the set-up on a fresh clone: `make repro` (the pipeline) and `make test` (the tests).
# Both create .venv/ with the pinned requirements the first time (about 2 minutes), then reuse it.
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

.PHONY: help repro quick test test-quick lint pull setup

help:  ## each target with its note (`make repro` and `make test` do all the set-up)
	@awk -F ':.*## ' '/^[a-z-]+:.*## / {printf "  %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(VENV)/.installed  ## .venv/ with the pinned requirements (repro, pull and test run it first)

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

repro: setup  ## every stage on the full data with params.yaml (a second run does nothing)
	$(PY) -m dvc repro

quick: setup  ## every stage on a 3,000-tweet subset: an experiment, params.yaml untouched
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
