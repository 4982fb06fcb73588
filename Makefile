# foobar_ops: `make demo` runs the main job on the built-in lab; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# test tools whose pins clash with the project's (sslyze wants an older cryptography): a venv apart
TOOLS := .venv-tools
SSLYZE_VERSION := 6.3.1

.PHONY: setup system venv tools demo test unit lint bench bench-web notebook lab-up lab-down lab-status clean

setup: system venv

system:
	@scripts/setup-system

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name foobar-ops --display-name foobar-ops >/dev/null
	@touch $@

# sslyze, for the lab test of the site's TLS against Mozilla's intermediate profile; promtool and
# amtool (from Debian's packages, unpacked), for the alert rules' tests
tools: $(TOOLS)/.installed

$(TOOLS)/.installed: Makefile scripts/fetch-prom-tools
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q 'sslyze==$(SSLYZE_VERSION)'
	scripts/fetch-prom-tools $(TOOLS)
	@touch $@

demo: setup
	$(BIN)/foobar-ops lab up
	$(BIN)/foobar-ops lab status
	$(BIN)/foobar-ops ping -i inventories/lab.yml
	$(BIN)/foobar-ops runbook deploy_stack -i inventories/lab.yml
	@$(BIN)/foobar-ops verify -i inventories/lab.yml

# JupyterLab on loopback only, with a fresh token, the project's kernel and the runbooks folder
notebook: venv
	@token=$$($(BIN)/python -c 'import secrets; print(secrets.token_hex(16))'); \
	  echo "JupyterLab: http://127.0.0.1:8888/lab?token=$$token"; \
	  $(BIN)/jupyter lab --ip=127.0.0.1 --port=8888 --no-browser --ServerApp.token=$$token \
	    --MappingKernelManager.default_kernel_name=foobar-ops --notebook-dir=$(CURDIR)

# lint and format (ruff), types (mypy), the layering contract (import-linter)
lint: venv
	$(BIN)/ruff check foobar_ops tests scripts app runbooks loadtests fabfile.py
	$(BIN)/ruff format --check foobar_ops tests scripts app runbooks loadtests fabfile.py
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup tools lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

bench: setup
	@$(BIN)/python -m compileall -q foobar_ops  # timed as an installed package runs: compiled once
	$(BIN)/python scripts/bench_apply.py
	$(BIN)/python scripts/bench_apply.py --stack --runs 3
	$(BIN)/python scripts/bench_startup.py
	$(BIN)/python scripts/bench_fleet.py
	$(BIN)/python scripts/bench_anchor.py

# the request path through the load balancer and direct (wrk); the stack is deployed first
bench-web: setup
	$(BIN)/foobar-ops lab up
	$(BIN)/foobar-ops apply -i inventories/lab.yml >/dev/null
	$(BIN)/foobar-ops verify -i inventories/lab.yml
	$(BIN)/python scripts/bench_web.py

lab-up: setup
	$(BIN)/foobar-ops lab up

lab-down: venv
	$(BIN)/foobar-ops lab down

lab-status: venv
	$(BIN)/foobar-ops lab status

clean:
	rm -rf $(VENV) $(TOOLS) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
