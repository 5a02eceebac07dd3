# Two commands for a fresh machine: `make demo` (the main job, embedded defaults) and `make test`
# (lint and format check first, then the suite).
# Each creates .venv and installs on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.prodgan-installed
FMNIST := /usr/share/datasets/fashion-mnist

export MLFLOW_DISABLE_TELEMETRY := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1
export DO_NOT_TRACK := 1

.PHONY: demo test lint bench setup dataset clean-state

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) dataset
	$(BIN)/prodgan setup  # Inception weights and Data Docs assets: the last step that uses the network

dataset:
	@if [ ! -d $(FMNIST) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist); \
	  else echo "Fashion-MNIST missing: run  sudo apt-get install dataset-fashion-mnist" >&2; exit 1; fi; \
	fi

demo: setup
	$(BIN)/prodgan data setup
	$(BIN)/prodgan data version
	@echo "== champion: the recipe for this machine (configs/cpu.yaml on a CPU, configs/fmnist.yaml with CUDA)"
	$(BIN)/prodgan retrain
	@echo "== challenger: a deliberately short run of the same recipe; the gates must reject it, with reasons"
	$(BIN)/prodgan retrain --set steps=300 --set max_seconds=60
	@echo "== who was champion when"
	$(BIN)/prodgan audit history
	@echo "== open the UIs with the commands the last retrain printed above (MLflow UI, Prefect flow run: each with its 'start it with' line)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint setup
	$(BIN)/python -m pytest -q --durations=25

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-state:
	rm -rf .prodgan
