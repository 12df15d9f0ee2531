# pyk8s: `make run` starts a cluster, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pyk8s-setup

.PHONY: setup run test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup-system.sh
	scripts/setup-system.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
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
