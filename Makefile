# Quarterdeck: `make run` serves the portal with the example organisation; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export QD_DATABASE_URL ?= sqlite:///$(CURDIR)/var/quarterdeck.db

.PHONY: run stop-demo test test-deps lint bench bench-catalog bench-deploys bench-concurrency bench-jobs bench-rollouts clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv
	$(BIN)/uv pip install -q --python $(BIN)/python -e '.[test]'
	touch $(STAMP)

DEMO_ADMIN ?= admin@northwind.example
DEMO_PASSWORD ?= northwind-demo-admin
PORT ?= 8080
WORKERS ?=

# The demo (docs/rollouts.md): hello-service deploys for real through the local driver, a Prometheus on
# 127.0.0.1:9095 scrapes its versions, a registry on 127.0.0.1:5055 holds its images. Both run in the
# background under var/demo/ (scripts/demo_services.py) until `make stop-demo`.
run stop-demo clean: export QD_DEPLOY_DRIVERS = $(CURDIR)/examples/deploy-drivers.yaml
run stop-demo clean: export QD_DEPLOY_STATE_DIR = $(CURDIR)/var/deploys
run: export QD_PROMETHEUS_URL = http://127.0.0.1:9095
run: export QD_REGISTRY_PLAIN_HTTP = 127.0.0.1:5055

run: $(STAMP)
	bash scripts/demo-deps.sh
	$(BIN)/quarterdeck db upgrade
	$(BIN)/quarterdeck import examples
	$(BIN)/quarterdeck environments apply examples/environments.yaml
	$(BIN)/quarterdeck deploys report --file examples/deploys.yaml > /dev/null
	$(BIN)/quarterdeck pipelines apply examples/pipelines/hello-service.yaml --service hello-service > /dev/null
	$(BIN)/quarterdeck users create-admin --email $(DEMO_ADMIN) --password $(DEMO_PASSWORD) --if-missing
	$(BIN)/python scripts/demo_services.py start
	@echo "sign in at http://127.0.0.1:$(PORT)/login as $(DEMO_ADMIN) / $(DEMO_PASSWORD)"
	@echo "deploy the example service at http://127.0.0.1:$(PORT)/services/hello-service/deploys (docs/rollouts.md); make stop-demo stops it all"
	$(BIN)/quarterdeck serve --host 127.0.0.1 --port $(PORT) $(if $(WORKERS),--workers $(WORKERS))

stop-demo:
	test ! -x $(BIN)/python || $(BIN)/python scripts/demo_services.py stop

# Test processes for the tests outside tests/e2e (pytest-xdist; each starts its own PostgreSQL). The browser
# tests run in one process after them: their module-wide servers are costly to start twice.
TEST_PROCESSES ?= 2

test-deps:
	bash scripts/install-test-deps.sh

test: $(STAMP) test-deps
	$(BIN)/ruff check quarterdeck tests bench
	$(BIN)/ruff format --check quarterdeck tests bench
	$(BIN)/mypy quarterdeck tests bench
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q -p no:cacheprovider --ignore=tests/e2e -n $(TEST_PROCESSES)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e

lint: $(STAMP)
	$(BIN)/ruff check quarterdeck tests bench
	$(BIN)/mypy quarterdeck tests bench
	$(BIN)/lint-imports --no-cache

# BENCH_ARGS go to the catalog benchmark (bench/run.py), e.g.
# make bench-catalog BENCH_ARGS="--sizes 1000 --dialect sqlite --seconds 2 --out /tmp/qd-bench"
bench: $(STAMP)
	bash scripts/install-test-deps.sh --bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.deploys
	$(BIN)/python -m bench.concurrency
	$(BIN)/python -m bench.jobs
	$(BIN)/python -m bench.rollouts

bench-catalog: $(STAMP)
	bash scripts/install-test-deps.sh --bench
	$(BIN)/python -m bench.run $(BENCH_ARGS)

bench-deploys: $(STAMP)
	bash scripts/install-test-deps.sh --bench
	$(BIN)/python -m bench.deploys

bench-concurrency: $(STAMP)
	bash scripts/install-test-deps.sh --bench
	$(BIN)/python -m bench.concurrency

bench-jobs: $(STAMP)
	bash scripts/install-test-deps.sh --bench
	$(BIN)/python -m bench.jobs

bench-rollouts: $(STAMP)
	bash scripts/install-test-deps.sh --bench
	$(BIN)/python -m bench.rollouts

clean: stop-demo
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
