# Two commands reach the first result: `make report` (set-up + dvc repro) and `make test`;
# `make render` only re-renders the page from the committed metrics (no data, no training).
# `make shell` opens a shell with the environment on PATH, where `dvc repro` / `dvc exp run` work as typed.
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

.PHONY: setup report render shell test test-fast lab clean-env

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

report: setup
	dvc repro
	@echo "report: $(CURDIR)/reports/index.html"

# The page alone, from the results files in git (works on a fresh clone: no data/ needed). Not through
# `dvc repro`: it always renders, writes no dvc.lock and no executed notebook, and gives the committed
# reports/index.html byte for byte (the report stage runs the same script).
render: setup
	$(PY) scripts/render_report.py

# A shell with .venv/bin first on PATH (the same as `source .venv/bin/activate`): the pipeline's stages
# run `python`, which must be the environment's.
shell: setup
	@echo "environment: $(CURDIR)/$(VENV) (exit to leave)"
	@VIRTUAL_ENV=$(CURDIR)/$(VENV) $(SHELL) -i

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
