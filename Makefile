# Everything sets itself up: `make build` creates .venv from requirements.txt.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: build proto test lint format run bench bench-rpc clean

build: $(STAMP) proto
	@chmod +x scaler run.sh
	@echo "built: ./scaler serve --help"

$(STAMP): requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

proto: $(STAMP)
	$(BIN)/python tools/gen_proto.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: build lint
	$(BIN)/pytest -q

run: build
	./scaler simulate --builtin --mode fast

bench: build
	$(BIN)/python -m bench.policies

bench-rpc: build
	$(BIN)/python -m bench.rpc

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
