# Podium: `make run` runs the platform, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format install soak soak-long bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Podium needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt uv
	$(BIN)/uv pip install --python $(BIN)/python --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)  ## Create .venv and install pinned dependencies (uv: seconds, where pip took ~30 s)

run: $(STAMP)  ## Run the whole platform in the foreground (Ctrl-C stops it)
	$(BIN)/podium dev

# two pytest-xdist workers: the platform and timing tests in two lanes, one test after another
# in each (tests/conftest.py), the rest wherever a worker is free; PYTEST_WORKERS=0: one process
PYTEST_WORKERS ?= 2

test: $(STAMP)  ## The whole suite under branch coverage (printed; fails under 85%): real broker, the machine's or embedded PostgreSQL/Redis
	rm -rf test-artifacts/coverage
	$(BIN)/coverage run -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
	@$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

lint: $(STAMP)  ## ruff (format + lint, bandit rules included), mypy --strict and the import contracts
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

soak: $(STAMP)  ## The short fault soak (90 s of load, 9 faults): 0 lost, 0 double-counted, stores equal the oracle
	PODIUM_ENV=$${PODIUM_ENV:-dev} $(BIN)/podium soak --duration 90 --rate 200 --report .podium/soak-report.json

soak-long: $(STAMP)  ## The long fault soak (30 minutes at 2,000 events/s, every fault); report and plot in docs/
	PODIUM_ENV=$${PODIUM_ENV:-dev} $(BIN)/podium soak --duration 1800 --rate 2000 --batch-share 0.9 --report docs/soak-report.json --plots docs/

bench: $(STAMP)  ## Benchmarks vs the naive app and Redis, same run (<= 10 min); writes bench/results.json
	@command -v wrk >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; else echo "wrk is missing: sudo apt-get install -y wrk" >&2; exit 1; fi; }
	@command -v redis-benchmark >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-tools; else echo "redis-benchmark is missing: sudo apt-get install -y redis-tools" >&2; exit 1; fi; }
	PODIUM_ENV=$${PODIUM_ENV:-dev} $(BIN)/podium bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .podium test-artifacts .pytest_cache .mypy_cache .ruff_cache
