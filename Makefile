# The README's commands: `make demo` and `make test` work on a bare Debian machine
# (Python 3.11+, root for installing the database servers) and where Docker runs.
VENV ?= .venv
BIN := $(VENV)/bin
ENV_FILE := .aioetl/local.env
# dbt for tests/integration/test_dbt_sources.py, in a venv of its own: dbt-core pins
# pathspec<1.1, which would downgrade mypy in the project's venv.
DBT_VENV ?= .venv-dbt
WITH_ENV := set -a && . ./$(ENV_FILE) && set +a &&

.PHONY: install services test unit lint demo bench soak clean

install: $(VENV)/.installed $(DBT_VENV)/.installed

$(VENV)/.installed: pyproject.toml
	bash .ci/venv.sh $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev,asyncmy,bench]'
	touch $@

# dbt-core 1.12 needs dbt-core-experimental-parser, whose sdist downloads a binary from
# GitHub while it builds (fails offline): 1.11 is the newest that installs from the
# registry alone.
$(DBT_VENV)/.installed:
	bash .ci/venv.sh $(DBT_VENV)
	$(DBT_VENV)/bin/pip install --quiet 'dbt-core>=1.10,<1.12' 'dbt-postgres>=1.9,<1.12'
	touch $@

services: install
	bash .ci/services.sh

# The full suite on the real servers; an unreachable database fails, never skips.
test: services
	$(WITH_ENV) AIOETL_REQUIRE_DATABASES=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

unit: install
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict aioetl

# The benchmarks (15 to 35 minutes; BENCH_ARGS="--only NAME" runs a part): writes benchmarks/RESULTS.md. Not part of `make test`,
# which runs them only with tiny sizes (tests/integration/test_benchmarks_smoke.py).
# BENCH_ARGS="--only clinic" runs only the whole-clinic section (400 tables, ~2 minutes).
bench: services
	$(WITH_ENV) $(BIN)/python -m benchmarks $(BENCH_ARGS)

# The kill-storm soak (tests/integration/test_soak.py): 20 runs of `aioetl replicate` while
# every connection of the job is killed, about 10 minutes; `make test` runs it twice.
# AIOETL_SOAK_RUNS=N sets the runs; each process's output is kept under .aioetl/soak/.
AIOETL_SOAK_RUNS ?= 20
soak: services
	$(WITH_ENV) AIOETL_REQUIRE_DATABASES=1 AIOETL_SOAK_RUNS=$(AIOETL_SOAK_RUNS) \
		AIOETL_SOAK_LOG_DIR=.aioetl/soak $(BIN)/python -m pytest -s tests/integration/test_soak.py $(PYTEST_ARGS)

demo: services
	$(WITH_ENV) $(BIN)/aioetl demo-data --force
	$(WITH_ENV) $(BIN)/aioetl check
	$(WITH_ENV) $(BIN)/aioetl replicate --target all
	@echo ""
	@echo "Next: load the venv and the variables in your shell, then try"
	@echo "  . $(BIN)/activate && set -a && . ./$(ENV_FILE) && set +a"
	@echo "  aioetl status                # how fresh each table is"
	@echo "  aioetl replicate --dry-run   # what a rerun would do: nothing is new"
	@echo "  aioetl replicate             # a rerun: unchanged tables are skipped"
	@echo "  aioetl discover --check      # tables.yml against the source catalog"

clean:
	rm -rf $(VENV) $(DBT_VENV) .aioetl .pytest_cache .mypy_cache .ruff_cache
