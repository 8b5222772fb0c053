# Parley developer commands. `make run` starts everything; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DJANGO_DEBUG ?= true

.PHONY: run install migrate demo test test-fast lint fmt typecheck bench-import clean

$(BIN)/activate: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

install: $(BIN)/activate

migrate: install
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py seed_demo

## Serve Parley at http://127.0.0.1:8000 with a Celery worker beside it (embedded default,
## or PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set).
run: demo
	$(BIN)/honcho start --port $${PORT:-8000}

## The test suite, against PostgreSQL and Redis (DATABASE_URL/REDIS_URL, default: local servers).
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy annotate learner

bench-import: install
	$(BIN)/python -m bench.import --utterances 200000
	$(BIN)/python -m bench.import --utterances 50000

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
