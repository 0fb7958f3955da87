# msgsim: two commands on a fresh machine (Python 3.11, pip, make):
#   make demo   set up .venv, compare the architecture presets, write out/report.html
#   make test   set up .venv with the test tools, run lint, types and every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
OUT    ?= out

DEMO_MODELS := http_polling_monolith long_polling_monolith websocket_monolith websocket_microservices \
               websocket_kafka_cassandra websocket_rabbitmq_mongodb websocket_sqs_dynamodb \
               secure_e2e_oauth_ratelimit ha_multi_zone

.PHONY: demo test lint typecheck pytest lab bench mutate validate clean help

help:
	@echo "make demo      compare the architecture presets -> $(OUT)/report.html"
	@echo "make test      lint, type-check and run every test"
	@echo "make lab       open JupyterLab on notebooks/"
	@echo "make bench     run the benchmarks (ratios against baselines measured in the same run)"
	@echo "make mutate    plant known bugs in copies of the code and check the tests catch each"
	@echo "make validate  check the simulator against queueing theory"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# runtime dependencies only: what the demo needs
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	@touch $@

# everything the tests need: lint, types, property tests, the cluster backend
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[dev,cluster]'
	@touch $(VENV)/.runtime $@

$(VENV)/.lab: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[lab]'
	@touch $@

demo: $(VENV)/.runtime
	$(BIN)/msgsim compare $(DEMO_MODELS) --replications 2 --out $(OUT)
	@echo "open $(OUT)/report.html"

lint: $(VENV)/.dev
	$(BIN)/ruff check sim reference_impl tests benchmarks
	$(BIN)/ruff format --check sim reference_impl tests benchmarks

typecheck: $(VENV)/.dev
	$(BIN)/mypy sim reference_impl

pytest: $(VENV)/.dev
	@$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; \
	exit $$rc

test: lint typecheck pytest

mutate: $(VENV)/.dev
	$(BIN)/python tests/mutate.py

validate: $(VENV)/.runtime
	$(BIN)/msgsim validate

lab: $(VENV)/.lab
	$(BIN)/jupyter lab notebooks/

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/engine_overhead.py
	$(BIN)/python benchmarks/sweep_scaling.py
	$(BIN)/python benchmarks/reference_costs.py
	$(BIN)/python benchmarks/full_path.py
	$(BIN)/python benchmarks/where_time_goes.py

clean:
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache .hypothesis
