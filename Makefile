# Two commands reach the first result: `make report` (set-up + dvc repro) and `make test`;
# `make render` only re-renders the page from the committed metrics (no data, no training).
# `make setup` alone creates or reuses the environment; it is idempotent (a second run
# installs nothing and takes about a second).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Caches stay inside the workspace; no analytics, no update checks.
export TORCH_HOME ?= $(CURDIR)/.cache/torch
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib
export DVC_SITE_CACHE_DIR ?= $(CURDIR)/.cache/dvc-site
export DVC_NO_ANALYTICS := 1
export PYTHONUNBUFFERED := 1
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup report render test test-fast lab clean-env

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

report: setup
	dvc repro
	@echo "report: $(CURDIR)/reports/index.html"

# The report stage alone, from the metrics files in git (works on a fresh clone: no data/ needed).
render: setup
	dvc repro --single-item report
	@echo "report: $(CURDIR)/reports/index.html"

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

lab: setup
	jupyter lab --notebook-dir=$(CURDIR)

environment.yml: requirements.txt
	$(PY) scripts/environment_yml.py requirements.txt > environment.yml

clean-env:
	rm -rf $(VENV)
