# pyk8s: `make run` starts a cluster, `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
# pip on these machines warns about missing local index folders; keep logs readable.
QUIET_PIP := grep -v '^WARNING: Location' || true
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pyk8s-setup

.PHONY: setup run test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup-system.sh
	scripts/setup-system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 2>&1 | { $(QUIET_PIP); }
	$(BIN)/pip install -q -e '.[test]' 2>&1 | { $(QUIET_PIP); }
	touch $@

run: setup
	$(BIN)/pyk8s server

test: setup
	$(BIN)/pytest -q -ra

test-fast: setup
	$(BIN)/pytest -q -x -m "not etcd and not root"

bench: setup
	$(BIN)/python bench/storage.py

clean:
	rm -rf $(VENV) build *.egg-info
