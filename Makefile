# Set-up and everyday commands. A fresh machine needs only `make demo` or `make test`:
# each target installs what it needs (Python venv, npm packages, Debian's chromium).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup python-deps node-deps chromium build demo test test-fast bench clean

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

build: node-deps
	node js/build.mjs

# Main job: JupyterLab open on the quick-start notebook (scanpy's bundled pbmc68k_reduced).
# JupyterLab refuses to run as root unless told; containers and CI machines often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
demo: setup
	cd notebooks && ../$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 $(ALLOW_ROOT) 01_quickstart.ipynb

# Every test: JS unit tests, Python unit tests, browser tests, notebooks under nbval.
test: setup chromium
	node --test js/tests/
	$(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

bench: setup
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) node_modules build dist *.egg-info
