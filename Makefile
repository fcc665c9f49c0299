# One entry point: every target makes its own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test test-unit test-compose clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/ubernetes up $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

# The quick loop: tests/unit only (no sockets, no processes; seconds).
test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit $(ARGS)

# The compose demo end to end with a real Docker daemon (docs/compose.md); opt in, minutes.
test-compose: $(STAMP)
	UBERNETES_COMPOSE_E2E=1 $(BIN)/python -m pytest -q -s tests/e2e/test_compose_e2e.py $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
