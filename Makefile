# Set-up and everyday commands. A fresh machine needs only `make demo` or `make test`:
# each target installs what it needs (Python venv, npm packages, Debian's chromium).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup python-deps node-deps chromium nginx build demo lint test test-fast docs-images bench clean

setup: python-deps node-deps build

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

python-deps: $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules/.package-lock.json

node-deps: node_modules/.package-lock.json

# Browser tests drive Debian's chromium (never a browser download).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The static-site tests serve a published site with Debian's nginx (started by the test on 127.0.0.1).
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
	  echo "installing Debian's nginx for the static-site tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }

build: node-deps
	node js/build.mjs

# Main job: JupyterLab open on the quick-start notebook (scanpy's bundled pbmc68k_reduced).
# JupyterLab refuses to run as root unless told; containers and CI machines often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
# Opens the notebook itself (/lab/tree/...), not the Launcher.
demo: setup
	cd notebooks && ../$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(ALLOW_ROOT) \
	  --ServerApp.default_url=/lab/tree/01_quickstart.ipynb

# Static checks: ruff (lint), mypy (Python types), tsc --checkJs (JS types).
lint: setup
	$(BIN)/ruff check cellucid_nb tests benchmarks
	$(BIN)/mypy
	npm run --silent typecheck

# Every test: static checks, JS unit tests with line coverage over every js/ source (>= 80 %),
# Python unit tests, browser tests, notebooks under nbval.
test: setup chromium nginx lint
	npm run --silent coverage
	$(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

# Unit tests only (JS and Python; no browser, no notebooks): a couple of minutes.
test-fast: setup
	node --test js/tests/
	$(BIN)/python -m pytest tests -m "not browser" -p no:cacheprovider -q

# Screenshots for the README (docs/images/), taken by the wizard's browser test.
docs-images: setup chromium
	CELLUCID_DOCS_IMAGES=1 $(BIN)/python -m pytest tests/e2e/test_wizard_lab.py -p no:cacheprovider -q

bench: setup
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) node_modules build dist *.egg-info
