# Parley developer commands. `make run` starts everything; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DJANGO_DEBUG ?= true

.PHONY: run install migrate demo test test-fast lint fmt typecheck bench-import bench-distill screenshots clean

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
	$(BIN)/mypy annotate learner bench

bench-import: install
	$(BIN)/python -m bench.import_speed --utterances 200000
	$(BIN)/python -m bench.import_speed --utterances 50000

## Refresh docs/screenshots/ (every page the browser tests visit) from the browser tests.
screenshots: install
	PARLEY_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/browser

## The distillation benchmark (docs/distillation.md): both tasks, 72 runs, about 3.5 h on 2 cores.
## DATA=../shared/data/dailydialog by default; PRECISION=fp32 for the exact float32 numbers, and on
## a CPU without bf16 units (AVX-512 BF16 or AMX), where bf16 is emulated and about 10x slower.
DATA ?= ../shared/data/dailydialog
PRECISION ?= bf16
bench-distill: install
	mkdir -p bench/out
	for task in act sentiment; do \
		$(BIN)/python -m bench.distill --train $(DATA)/pool.jsonl --llm-labels $(DATA)/llm_labels.jsonl \
			--eval $(DATA)/test.jsonl --task $$task --objective ce kd llmr pref \
			--human-fraction 0 0.05 0.2 --seeds 3 --precision $(PRECISION) \
			--out bench/out/distill-$$task.json || exit 1; \
	done

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
