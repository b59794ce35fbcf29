# The front door. `make test` and `make e2e` do all their own setup.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest
REPORTS ?= reports
MODES ?= overlay underlay
LAB_PROFILE ?=
PYTEST_ARGS ?=

.PHONY: help venv test unit lint lab lab-up lab-down bench report clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(PY)

venv: $(PY) ## create .venv with the project and its test tools

unit: $(PY) ## unit tests of the library (oracle, model, lab, reports, cluster configs)
	$(PYTEST) tests $(PYTEST_ARGS)

lint: $(PY) ## ruff on the code
	$(PY) -m ruff check kubeovn_conformance tests suites conftest.py

# One pytest run per mode, each its own run directory under reports/.
lab: $(PY) ## the conformance suites on the OVN lab, Overlay and Underlay (needs root)
	@set -e; for mode in $(MODES); do \
	  $(PYTEST) suites --backend lab --mode $$mode $(if $(LAB_PROFILE),--lab-profile $(LAB_PROFILE)) \
	    --reports-dir $(REPORTS) -p no:cacheprovider $(PYTEST_ARGS); \
	done

test: unit lint lab ## everything that runs without a cluster: unit tests, lint, lab suites

lab-up: $(PY) ## start a long-lived OVN lab (pytest --backend lab attaches to it)
	$(VENV)/bin/kubeovn-conformance lab up

lab-down: $(PY) ## stop the lab and remove everything it made
	$(VENV)/bin/kubeovn-conformance lab down

clean: ## remove the virtualenv, caches and reports
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
	find $(REPORTS) -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
