# foobar_ops: `make demo` runs the main job on the built-in lab; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup system venv demo test unit lint bench lab-up lab-down lab-status clean

setup: system venv

system:
	@scripts/setup-system

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

demo: setup
	$(BIN)/foobar-ops lab up
	$(BIN)/foobar-ops lab status
	$(BIN)/foobar-ops ping -i inventories/lab.yml
	@out="$$($(BIN)/python -c 'from foobar_ops.core import paths; print(paths.runbook_dir())')/deploy_stack-$$(date +%Y%m%d-%H%M%S).ipynb"; \
	  mkdir -p "$$(dirname "$$out")"; \
	  $(BIN)/papermill --no-progress-bar runbooks/deploy_stack.ipynb "$$out" -p output_notebook "$$out" && \
	  echo "runbook output notebook: $$out"
	@$(BIN)/foobar-ops verify -i inventories/lab.yml

# lint and format (ruff), types (mypy), the layering contract (import-linter)
lint: venv
	$(BIN)/ruff check foobar_ops tests scripts app runbooks
	$(BIN)/ruff format --check foobar_ops tests scripts app runbooks
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: venv
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

bench: setup
	$(BIN)/python scripts/bench_apply.py
	$(BIN)/python scripts/bench_apply.py --stack --runs 3

lab-up: setup
	$(BIN)/foobar-ops lab up

lab-down: venv
	$(BIN)/foobar-ops lab down

lab-status: venv
	$(BIN)/foobar-ops lab status

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
