# Two commands a newcomer needs: `make demo` and `make test`. Everything installs from pyproject.toml + uv.lock.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export IDENTITY_PIPELINE_CONFIG ?= $(CURDIR)/data/config.yaml
export IDENTITY_PIPELINE_DB ?= $(CURDIR)/.dagster_home/identity.duckdb

.PHONY: install demo test lint format validate dev bench-profiles bench-events clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Bytecode is compiled at install time: uv does not by default, and a shell with PYTHONDONTWRITEBYTECODE=1 (as
# on our development machines) then recompiles every imported module in every process (~3 s per Python
# process here: each test worker, each CLI run, each benchmark run). The project's own modules are recompiled
# when stale. A change to this recipe re-runs it (the Makefile is a prerequisite).
$(BIN)/identity-pipeline: $(UV) pyproject.toml uv.lock Makefile
	$(UV) sync --frozen --extra dev --quiet --compile-bytecode
	@touch $@

install: $(BIN)/identity-pipeline $(DAGSTER_HOME)/dagster.yaml
	@$(BIN)/python -m compileall -q identity_pipeline > /dev/null

$(DAGSTER_HOME)/dagster.yaml:
	@mkdir -p $(DAGSTER_HOME)
	@printf 'concurrency:\n  runs:\n    max_concurrent_runs: 1\ntelemetry:\n  enabled: false\n' > $@

demo: install
	$(BIN)/identity-pipeline run

validate: install
	$(BIN)/identity-pipeline validate
	$(BIN)/dagster definitions validate -w workspace.yaml

test: install
	$(BIN)/ruff check identity_pipeline identity_pipeline_tests bench
	$(BIN)/dagster definitions validate -w workspace.yaml
	$(BIN)/pytest -n 2 identity_pipeline_tests

lint: install
	$(BIN)/ruff check identity_pipeline identity_pipeline_tests bench
	$(BIN)/ruff format --check identity_pipeline identity_pipeline_tests bench

format: install
	$(BIN)/ruff format identity_pipeline identity_pipeline_tests bench
	$(BIN)/ruff check --fix identity_pipeline identity_pipeline_tests bench

dev: install
	$(BIN)/dagster dev -w workspace.yaml

bench-profiles: install
	$(BIN)/python bench/bench_profile_resolution.py

bench-events: install
	$(BIN)/python bench/bench_event_stitching.py

clean:
	rm -rf $(VENV) $(TOOLS) .dagster_home .pytest_cache bench/.data
