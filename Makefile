# Two entry points that work on a fresh machine: `make quickstart` and `make test`.
VENV ?= .venv
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: quickstart test lint install benchmarks

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

quickstart: $(BIN)/.installed
	$(BIN)/xlt fit --config configs/quickstart.yaml

lint: $(BIN)/.installed
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q --durations=15

benchmarks: $(BIN)/.installed
	$(BIN)/python benchmarks/mlm_throughput.py
