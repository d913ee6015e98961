# Everything sets itself up: `make build` creates .venv from requirements.txt.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: build proto test lint format run bench bench-foresight bench-rpc bench-load bench-burst bench-faults clean

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
	PYTHONPATH=src:. $(BIN)/python -m bench.policies
	PYTHONPATH=src:. nice -n 5 $(BIN)/python -m bench.windows

bench-foresight: build
	PYTHONPATH=src:. $(BIN)/python -m bench.foresight
	PYTHONPATH=src:. $(BIN)/python -m bench.foresight --create-ms 500

bench-rpc: build
	PYTHONPATH=src:. $(BIN)/python -m bench.rpc

bench-load: build
	PYTHONPATH=src:. $(BIN)/python -m bench.load_wire

bench-burst: build
	PYTHONPATH=src:. $(BIN)/python -m bench.burst

bench-faults: build
	PYTHONPATH=src:. $(BIN)/python -m bench.faults

# Any scaler beside ours, wire mode at speed 1 (10 min per contestant); see docs/simulator.md.
COMPARE_ARGS ?= ../shared/traces/dataSet_1 --slice 15000:600 --ours reference --ours default \
	--scaler 'tiny=$(BIN)/python tests/tiny_scaler.py --listen {listen} --platform {platform}'

compare: build
	PYTHONPATH=src:. $(BIN)/python -m bench.compare $(COMPARE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
