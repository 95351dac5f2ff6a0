# Two commands: `make demo` and `make test`. Both build .venv from the pinned constraints on
# first use; re-running them skips the install (the stamp is newer than the pins).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DBT_MANIFEST := dbt_project/target/manifest.json
export DRIFT_PIPELINE_HOME ?= $(CURDIR)/data

.PHONY: install demo test test-fast dev bench reference browser-deps postgres-deps clean

$(STAMP): pyproject.toml drift_simulator/pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,browser,postgres,semantic]' -e ./drift_simulator
	@touch $(STAMP)

$(DBT_MANIFEST): $(STAMP) $(shell find dbt_project/models dbt_project/macros -type f 2>/dev/null) dbt_project/dbt_project.yml
	cd dbt_project && DRIFT_PIPELINE_HOME=$(DRIFT_PIPELINE_HOME) ../$(BIN)/dbt parse --quiet --profiles-dir . --project-dir . --log-path $(DRIFT_PIPELINE_HOME)/logs/dbt
	$(BIN)/python -c 'from drift_pipeline.dbt_project import record_manifest_fingerprint; record_manifest_fingerprint()'

## the venv from the pinned constraints (the pipeline and, beside it, the simulator), and the dbt manifest Dagster loads
install: $(STAMP) $(DBT_MANIFEST)

## simulator, 14-day backfill through Dagster, dbt, serving copy, headline metrics
demo: install
	$(BIN)/python -m drift_simulator.demo

# Chromium comes from Debian (browser downloads are not possible here); where it cannot be
# installed the browser test skips itself, except under CI (`CI` set), where both fail.
NOT_CI := [ -z "$$CI" ] || [ "$$CI" = 0 ] || [ "$$CI" = false ]
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/apt-get ] && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the UI test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null) \
		|| { echo "chromium could not be installed: the browser test will be skipped (fails under CI)"; $(NOT_CI); }; \
	fi

# Debian's PostgreSQL server for the Postgres path's test (it runs its own throwaway server on
# loopback); the test skips itself where the server cannot be installed (fails under CI).
postgres-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
		if [ -x /usr/bin/apt-get ] && [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's postgresql for the Postgres test"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null) \
			|| { echo "postgresql could not be installed: the Postgres test will be skipped (fails under CI)"; $(NOT_CI); }; \
		else \
			echo "no PostgreSQL server and no root apt-get to install it: the Postgres test will be skipped (fails under CI)"; $(NOT_CI); \
		fi; \
	fi

## the whole test suite (CI runs exactly this)
test: install browser-deps postgres-deps
	$(BIN)/pytest

## the inner loop's lane: every test that needs no dbt build, whole sync, PostgreSQL or browser
test-fast: install
	$(BIN)/pytest -m "not slow and not browser and not postgres" --durations=5

## the Dagster UI (dagster dev on workspace.yaml) at http://127.0.0.1:3000, against the simulator unless DRIFT_API_BASE_URL is set
dev: install
	$(BIN)/python -m drift_pipeline.devserver

## the client, sync and webhook benchmarks (figures printed)
bench: install
	$(BIN)/python bench/client.py --seconds 30
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/streams.py
	$(BIN)/python bench/webhooks.py

## regenerate docs/reference.md from the code
reference: install
	$(BIN)/python -m drift_pipeline.reference

## remove the venv and dbt's target folder
clean:
	rm -rf $(VENV) dbt_project/target dbt_project/logs
