# make run   - the pipeline end to end on this machine (no AWS account, no internet)
# make test  - lint, type check and the whole test suite
# Both create or update the venv first. `python3` is 3.12 here through .python-version (pyenv).

PYTHON ?= $(shell command -v python3.12 2>/dev/null || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
FUNCTION ?= download
EVENT  ?= events/$(FUNCTION).json

.PHONY: venv run test lint typecheck pytest invoke clean

venv: $(STAMP)

$(STAMP): requirements/dev.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else "error: $(PYTHON) is Python %d.%d; the Lambda runtime is python3.12: install 3.12 (pyenv install 3.12) or run make PYTHON=python3.12" % sys.version_info[:2])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

run: venv
	$(BIN)/pipeline run

invoke: venv
	$(BIN)/pipeline invoke $(FUNCTION) $(EVENT) --offline

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest -q

test: lint typecheck pytest

clean:
	rm -rf .pipeline .pytest_cache .mypy_cache .ruff_cache
