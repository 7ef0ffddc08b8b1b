VENV ?= .venv

.PHONY: check lint types test

# Lint, formatting, types and tests (CI runs lint, types and tests after a fresh install).
check: lint types test

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check schemas model streams

types:
	$(VENV)/bin/mypy schemas model streams

test:
	$(VENV)/bin/python -m pytest
