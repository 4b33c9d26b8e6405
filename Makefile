# Two commands set everything up on a fresh machine:
#   make demo   # venv + install + prepare the bundled sample corpus and print its statistics
#   make test   # venv + install + a local Ray head on loopback + the test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is the tested release (a CPU build where no GPU is present).
TORCH ?= torch==2.13.0
DATA_DIR ?= ../shared/data
PYTEST_ARGS ?=

# Keep Ray on loopback: one node, no traffic beyond 127.0.0.1.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0
export RELEXT_DATA_DIR ?= $(DATA_DIR)

.PHONY: install demo test lint bench-prepare clean

$(BIN)/.installed: pyproject.toml
	@echo "installing into $(VENV): pip, $(TORCH), then relext_ray and its dependencies"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q "$(TORCH)"
	@$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

install: $(BIN)/.installed

demo: install
	@$(BIN)/relext-demo

test: install
	PATH="$(abspath $(BIN)):$$PATH" scripts/with-ray-head.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check relext_ray tests benchmarks jobs scripts

bench-prepare: install
	$(BIN)/python benchmarks/prepare.py --data-dir $(DATA_DIR)/chinese_literature

clean:
	rm -rf $(VENV) out .pytest_cache
