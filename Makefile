# The README's commands. `make run` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
DEV    := DEBUG=true

.PHONY: install run simulate test test-postgres lint typecheck format check-deploy clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Development settings (DEBUG=true) for manage.py and the server, from .env.example; made
## once, never overwritten.
.env:
	cp .env.example .env

## Set up SQLite with the demo campaigns, print an admin login, serve on 127.0.0.1:8000.
run: $(STAMP) .env
	$(DEV) $(BIN)/python manage.py migrate --noinput
	$(DEV) $(BIN)/python manage.py import_campaigns campaigns/demo_campaigns.json
	$(DEV) $(BIN)/python manage.py demo_admin
	@echo "Simulate a call in another terminal:  make simulate"
	$(DEV) $(BIN)/python manage.py runserver 127.0.0.1:8000

## A whole simulated call to the summer offer's number, narrated.
simulate: $(STAMP) .env
	$(DEV) $(BIN)/python manage.py simulate_call --to 447700900001 --from 447946000123

## The whole suite on SQLite (set DATABASE_URL to run it on PostgreSQL).
test: $(STAMP)
	$(BIN)/pytest

test-postgres: $(STAMP)
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/callwhisper $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy calls campaigns alerts devtools whisper_project benchmarks

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache staticfiles
