# The front door. `make test` and `make e2e` do all their own setup.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv's stamp: every target needing the venv depends on it. Not $(PY): that is a symlink
# to the system interpreter, whose mtime make reads through the link (and touch would change).
VENV_STAMP := $(VENV)/.installed
PYTEST := $(PY) -m pytest
# The interpreter with the package, for scripts/: its own name, because make exports
# command-line variables and `make e2e PYTHON=python3.11` means the one that builds the venv.
export KOC_PYTHON := $(abspath $(PY))
REPORTS ?= reports
MODES ?= overlay underlay
LAB_PROFILE ?=
PYTEST_ARGS ?=

.PHONY: help venv test test-lab unit lint lab lab-full lab-up lab-down bench bench-report bench-kind report clean fuzz

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(VENV_STAMP): pyproject.toml
	@scripts/check-python $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

# Targets written as depending on $(PY) still get the venv.
$(PY): $(VENV_STAMP) ;

# network-config-analyzer (an independent NetworkPolicy engine the generator tests compare the
# oracle with) pins PyYAML==6.0.2 exactly and kubernetes 37 needs >=6.0.3: it gets a venv of
# its own, which tests/test_generator_nca.py runs (tests/nca_connectivity.py).
NCA_VENV ?= .venv-nca
NCA_VERSION := 2.1.0
NCA_STAMP := $(NCA_VENV)/.installed
$(NCA_STAMP):
	@scripts/check-python $(PYTHON)
	$(PYTHON) -m venv $(NCA_VENV)
	$(NCA_VENV)/bin/python -m pip install --quiet network-config-analyzer==$(NCA_VERSION)
	@touch $@

venv: $(VENV_STAMP) $(NCA_STAMP) ## create .venv with the project and its test tools (and .venv-nca)

# Two passes: what needs no lab on both cores (pytest-xdist), then the lab tests one at a time
# (one lab per machine: they share its daemons' names). Without root the lab tests skip.
unit: $(VENV_STAMP) $(NCA_STAMP) ## unit tests of the library (oracle, model, lab, reports, cluster configs)
	$(PYTEST) tests -m "not lab" -n 2 -p no:cacheprovider $(PYTEST_ARGS)
	$(PYTEST) tests -m lab -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV_STAMP) ## ruff on the code
	$(PY) -m ruff check kubeovn_conformance tests suites conftest.py

# One pytest run per mode, each its own run directory under reports/.
lab: $(VENV_STAMP) ## the conformance suites on the OVN lab, Overlay and Underlay (needs root)
	@set -e; for mode in $(MODES); do \
	  $(PYTEST) suites --backend lab --mode $$mode $(if $(LAB_PROFILE),--lab-profile $(LAB_PROFILE)) \
	    --reports-dir $(REPORTS) -p no:cacheprovider -v $(PYTEST_ARGS); \
	done

# As root: installs the lab's Debian packages (scripts/install-lab-deps), then everything.
# Not root: the unit tests and lint, then one line saying what to run for the lab.
test: ## everything that runs without a cluster: unit tests, lint, lab suites (root for the lab)
	@lab=0; scripts/install-lab-deps || lab=$$?; \
	case $$lab in 0|3) ;; *) echo "make test: installing the lab's packages failed (see above)" >&2; exit 1;; esac; \
	$(MAKE) --no-print-directory unit lint || exit 1; \
	if [ "$$lab" != 0 ]; then \
	  echo "make test: unit tests and lint passed; the lab needs root and apt-get: run 'sudo make test'" >&2; \
	  exit 2; \
	fi; \
	$(MAKE) --no-print-directory test-lab

# Nightly, not in `make test`: the suites on the newest tag of every release line (each a
# patch-level profile), both modes, the bug corpus in both modes, and the host-OVN vs OVN 25.03
# per-cell diff in both modes (`make unit` runs it in overlay only). About 46 minutes.
LAB_FULL_PROFILES ?= v1.12.35 v1.13.15 v1.14.41 v1.15.24 v1.16.2
# The longer fuzz: a new seed every night (the date, in the JUnit properties), both modes.
LAB_FULL_FUZZ_COUNT ?= 100
# make test's share of the lab (30 minutes on a clean clone, see README "What runs where"):
# every suite in both modes, except the generated suite, which runs in Overlay here and in
# both modes in make lab-full.
test-lab: $(VENV_STAMP)
	$(MAKE) --no-print-directory lab MODES=overlay
	$(MAKE) --no-print-directory lab MODES=underlay PYTEST_ARGS="--ignore=suites/test_generated.py $(PYTEST_ARGS)"

lab-full: $(VENV_STAMP) ## nightly: suites on every release line's newest tag, both modes; the corpus in both modes; a longer fuzz (root)
	@failed=0; \
	for profile in $(LAB_FULL_PROFILES); do \
	  $(MAKE) --no-print-directory lab LAB_PROFILE=$$profile || failed=1; \
	done; \
	KOC_CORPUS_MODES="overlay underlay" $(PYTEST) tests/test_history_corpus.py -p no:cacheprovider -v \
	  || failed=1; \
	KOC_OVN_DIFF_MODES="overlay underlay" $(PYTEST) tests/test_lab_ovn_diff.py -p no:cacheprovider -v \
	  || failed=1; \
	$(MAKE) --no-print-directory fuzz FUZZ_SEED=$$(date -u +%Y%m%d) FUZZ_COUNT=$(LAB_FULL_FUZZ_COUNT) || failed=1; \
	exit $$failed

# The fuzzer (kubeovn_conformance/fuzz/): random scenarios from a fixed seed, one run per mode;
# a failure is shrunk and written to $(REPORTS)/<run>/fuzz/<seed>-<n>.yaml (exit status 1).
FUZZ_SEED ?= 1
FUZZ_COUNT ?= 10
# The lab converges in well under a second per state: a shorter deadline makes shrink trials cheap.
FUZZ_ARGS ?= --deadline 5
fuzz: $(VENV_STAMP) ## random scenarios on the lab, failures shrunk: [FUZZ_SEED=1] [FUZZ_COUNT=10] [LAB_PROFILE=...] (root)
	@failed=0; for mode in $(MODES); do \
	  $(VENV)/bin/kubeovn-conformance fuzz --backend lab --mode $$mode --seed $(FUZZ_SEED) \
	    --count $(FUZZ_COUNT) $(if $(LAB_PROFILE),--lab-profile $(LAB_PROFILE)) --reports-dir $(REPORTS) \
	    $(FUZZ_ARGS) || failed=1; \
	done; exit $$failed

lab-up: $(VENV_STAMP) ## start a long-lived OVN lab (pytest --backend lab attaches to it)
	$(VENV)/bin/kubeovn-conformance lab up

lab-down: $(VENV_STAMP) ## stop the lab and remove everything it made
	$(VENV)/bin/kubeovn-conformance lab down

bench: $(VENV_STAMP) ## measure probe rounds, batching, oracle throughput, convergence (lab, root); then bench-report
	$(PY) -m kubeovn_conformance.bench --out $(REPORTS)
	$(PY) -m kubeovn_conformance.bench_packing --out $(REPORTS)
	$(MAKE) --no-print-directory bench-report

# A synthetic 3,000-case night (about 1 GB under $TMPDIR while it runs); no root, no lab.
BENCH_BASELINE ?=
bench-report: $(VENV_STAMP) ## report on a 3,000-case night: time, peak RSS, page size, render time [BENCH_BASELINE=ref]
	$(PY) -m kubeovn_conformance.bench_report --out $(REPORTS) $(if $(BENCH_BASELINE),--baseline $(BENCH_BASELINE))

# Every suite on the kind backend against the fake API server (tests/fake_apiserver.py), the API
# work per suite counted, then the budget of a nightly row, blocking namespace deletion and the
# overlapping one side by side. No Docker, no root; tens of minutes on 2 cores (not in make bench).
BENCH_KIND_ARGS ?=
bench-kind: $(VENV_STAMP) ## count a nightly row's API work per suite (kind backend, fake API server) and its budget
	$(PY) -m kubeovn_conformance.bench_kind --out $(REPORTS) $(BENCH_KIND_ARGS)

report: $(VENV_STAMP) ## HTML report of every run in reports/ (reports/index.html)
	$(VENV)/bin/kubeovn-conformance report $(REPORTS) -o $(REPORTS)/index.html --known clusters/known-issues.yaml
	@echo "open $(REPORTS)/index.html"

# --- kind clusters with Kube-OVN (scripts/, clusters/, kubeovn_conformance/clusters/) ---
MODE ?=
KUBE_OVN_VERSION ?=
CLUSTER_NAME ?= kube-ovn
VLAN_ID ?= 0
KIND_KUBECONFIG = .cache/kind/$(CLUSTER_NAME)/kubeconfig
KOC_VERSION = $(or $(KUBE_OVN_VERSION),$$($(PY) -m kubeovn_conformance.clusters default))
KOC_VLAN = $(if $(filter-out 0,$(VLAN_ID)),--vlan-id $(VLAN_ID))

.PHONY: e2e e2e-matrix cluster-up cluster-plan cluster-down diagnostics

cluster-up: $(VENV_STAMP) ## kind + Kube-OVN: [MODE=overlay|underlay] [KUBE_OVN_VERSION=vX.Y.Z] [VLAN_ID=N]
	scripts/cluster-up $(or $(MODE),overlay) $(KOC_VERSION) --name $(CLUSTER_NAME) $(KOC_VLAN)

# Underlay reads the kind docker network; without one (no kind cluster ever ran here) pass a
# saved `docker network inspect kind`: NETWORK_JSON=tests/fixtures/docker-network-kind.json
NETWORK_JSON ?=
cluster-plan: $(VENV_STAMP) ## print the commands cluster-up would run (changes nothing) [NETWORK_JSON=file]
	scripts/cluster-up $(or $(MODE),overlay) $(KOC_VERSION) --name $(CLUSTER_NAME) $(KOC_VLAN) --dry-run \
	  $(if $(NETWORK_JSON),--network-json $(NETWORK_JSON))

cluster-down: ## delete the kind cluster
	scripts/cluster-down --name $(CLUSTER_NAME)

diagnostics: $(VENV_STAMP) ## collect diagnostics of the kind cluster into $(REPORTS)/diagnostics
	scripts/collect-diagnostics --name $(CLUSTER_NAME) --out $(REPORTS)/diagnostics

# scripts/e2e, per version and mode: cluster-up (reuses a healthy cluster of the same mode and
# version), the suites, and on failure the cluster-wide diagnostics into the run directory.
# Per-probe traces are taken by the kind backend while each failing case is still in place.
# Every mode and version runs; the target fails at the end if any did. `exec`: make passes
# SIGTERM to its recipe's process only, and scripts/e2e passes it on to pytest.
# e2e-matrix: every version of clusters/versions.yaml, or only VERSIONS="vX.Y.Z ...".
VERSIONS ?=
E2E = exec scripts/e2e --modes "$(or $(MODE),$(MODES))" --name $(CLUSTER_NAME) --reports $(REPORTS) \
  --vlan-id $(VLAN_ID)
e2e: $(VENV_STAMP) ## the suites on kind with Kube-OVN (Docker): [MODE=...] [KUBE_OVN_VERSION=...]
	@$(E2E) --versions "$(KOC_VERSION)" -- $(PYTEST_ARGS)

e2e-matrix: $(VENV_STAMP) ## make e2e for every version of clusters/versions.yaml [VERSIONS="v1 v2"], then the report
	@$(E2E) --report --versions "$(or $(VERSIONS),$$($(PY) -m kubeovn_conformance.clusters matrix \
	  --format lines | cut -d' ' -f1 | uniq))" -- $(PYTEST_ARGS)

# --- weekly history runs: corpus entries with `kind:` tags (clusters/kube-ovn-history.yaml) ---
# Per run (entry x tag x mode): cluster-up at the tag, only the entry's cases, then `history check`
# (--expect fail on the pre-fix tag: exactly the entry's cells fail; pass on the fixed one). pytest's
# status 1 is the expected failure of a pre-fix tag; the check decides. A failed run is recorded,
# the next one still runs, and the target fails at the end naming them.
ENTRY ?= all
TAG ?=
HISTORY_FILTER = --entry $(ENTRY) $(if $(TAG),--tag $(TAG)) $(if $(MODE),--mode $(MODE))
HISTORY_FAILED = $(REPORTS)/history-failed.txt
comma := ,
# One word per run, entry/tag/expect/mode/case,case (history-matrix --format make).
HISTORY_RUNS = $(shell PYTHONPATH=. $(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m kubeovn_conformance.clusters \
  history-matrix --format make $(HISTORY_FILTER))
hrun = $(word $(2),$(subst /, ,$(1)))
# -k: each case by its exact kind id `[<mode>-<case>-<tag>]`, OR'd (clusters/history.py k_expression).
hrun_k = $(subst ] [,] or [,$(foreach c,$(subst $(comma), ,$(call hrun,$(1),5)),[$(call hrun,$(1),4)-$(c)-$(call hrun,$(1),2)]))
define history_run
run_id=$$(date -u +%Y%m%dT%H%M%SZ)-history-$(call hrun,$(1),1)-$(call hrun,$(1),2)-$(call hrun,$(1),4); \
if scripts/cluster-up $(call hrun,$(1),4) $(call hrun,$(1),2) --name $(CLUSTER_NAME) && \
  { $(PYTEST) suites --backend kind --mode $(call hrun,$(1),4) --kube-ovn-version $(call hrun,$(1),2) \
      --kubeconfig $(KIND_KUBECONFIG) --reports-dir $(REPORTS) --run-id "$$run_id" -p no:cacheprovider -v \
      -k '$(call hrun_k,$(1))' $(PYTEST_ARGS) || [ $$? -eq 1 ]; } && \
  $(VENV)/bin/kubeovn-conformance history check "$(REPORTS)/$$run_id" --entry $(call hrun,$(1),1) \
      --expect $(call hrun,$(1),3); then :; else \
  echo "$(call hrun,$(1),1) $(call hrun,$(1),2) $(call hrun,$(1),4) (expect $(call hrun,$(1),3)): $(REPORTS)/$$run_id" >> $(HISTORY_FAILED); \
  scripts/collect-diagnostics --name $(CLUSTER_NAME) --out "$(REPORTS)/$$run_id/diagnostics/cluster" || true; \
fi

endef

.PHONY: e2e-history
e2e-history: $(VENV_STAMP) ## corpus entries on their pre-fix/fixed tags (kind): [ENTRY=id|all] [TAG=vX.Y.Z] [MODE=...]
	$(PY) -m kubeovn_conformance.clusters history-matrix --format lines $(HISTORY_FILTER)
	@mkdir -p $(REPORTS) && rm -f $(HISTORY_FAILED)
	$(foreach r,$(HISTORY_RUNS),$(call history_run,$(r)))
	@if [ -s $(HISTORY_FAILED) ]; then echo "e2e-history: failed runs:" >&2; cat $(HISTORY_FAILED) >&2; exit 1; fi

clean: ## remove clusters, downloaded tools, the virtualenv, caches and reports
	-[ -x scripts/cluster-down ] && scripts/cluster-down --name $(CLUSTER_NAME)
	rm -rf $(VENV) $(NCA_VENV) .bin .cache .pytest_cache .ruff_cache .hypothesis build *.egg-info
	find $(REPORTS) -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
