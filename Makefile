# make run              - the pipeline end to end on this machine (no AWS account, no internet)
# make test             - lint, type check, sam validate, both builds, their sizes and imports, the tests
# make browser          - headless Chromium for the report's browser test (Debian's package; no-op if present)
# make build [ARCH=...] - sam build for Lambda (x86_64 default, or arm64), offline, without Docker
# make validate         - sam validate --lint on template.yaml
# make check-size       - unzipped size of each function + its layers, both builds, against the budget
# make check-imports    - each handler imports from the build (this machine's arch), train trains
# make bench            - size table, cold start, warm durations and cost per run (after both builds)
# make bench-noop        - a no-op `pipeline run` against the same pipeline in Luigi (installs Luigi in .venv-bench)
# make bench-scale       - pipeline run on 10^4..10^6 Iris-shaped rows (BENCH_SCALE_ARGS=--big: 10^7) against Luigi
# Each creates or updates the venv it needs first (run and invoke: requirements/run.txt; the rest:
# requirements/dev.txt). `python3` is 3.12 here through .python-version (pyenv).

PYTHON ?= $(shell command -v python3.12 2>/dev/null || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
# One venv, two stamps: make run needs only requirements/run.txt; make test adds requirements/dev.txt
# (which includes run.txt) to the same venv. The dev stamp depends on the run stamp, so a change of
# run.txt brings both up to date, and a venv made by make run becomes a dev venv on the first make test.
RUN_STAMP := $(VENV)/.run-stamp
STAMP     := $(VENV)/.dev-stamp
PY312_CHECK = @$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else "error: $(PYTHON) is Python %d.%d; the Lambda runtime is python3.12: install 3.12 (pyenv install 3.12) or run make PYTHON=python3.12" % sys.version_info[:2])'
PIP       := $(BIN)/python -m pip install --quiet --disable-pip-version-check
FUNCTION ?= download
EVENT  ?= events/$(FUNCTION).json

# aws-sam-cli pins boto3, click and others exactly, so it lives in a venv of its own.
SAM_VENV  := .venv-sam
SAM       := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-stamp

# Lambda's names for the two architectures; each gets a build directory of its own. x86_64 uses
# sam's default one, so a plain `sam deploy` after `make build` deploys it. No `sam build --cached`:
# its cache key is the layer's sources, not the ARCH in the environment that picks the wheels, and
# both builds share .aws-sam/build.toml, so a cached build could ship the other architecture's
# layer. A full build takes ~15 s.
ARCH       ?= x86_64
ARCHS      := x86_64 arm64
BUILD_DIR_x86_64 := .aws-sam/build
BUILD_DIR_arm64  := .aws-sam/build-arm64
BUILD_DIRS := $(foreach arch,$(ARCHS),$(BUILD_DIR_$(arch)))
BENCH_OUT  := .aws-sam/bench
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-stamp

.PHONY: venv run-venv sam-venv run test lint typecheck pytest invoke build build-all $(addprefix build-,$(ARCHS)) \
	validate check-size check-imports bench bench-noop bench-scale clean browser

venv: $(STAMP)

run-venv: $(RUN_STAMP)

$(RUN_STAMP): requirements/run.txt pyproject.toml
	$(PY312_CHECK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements/run.txt
	$(PIP) --no-deps -e .
	touch $@

$(STAMP): $(RUN_STAMP) requirements/dev.txt
	$(PIP) -r requirements/dev.txt
	touch $@

# Luigi, for bench/noop.py's reference pipeline only, in a venv of its own.
$(BENCH_STAMP): requirements/bench.txt
	$(PY312_CHECK)
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/bench.txt
	touch $@

sam-venv: $(SAM_STAMP)

$(SAM_STAMP): requirements/sam.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else "error: $(PYTHON) is Python %d.%d; make needs a python3.12: run make PYTHON=python3.12" % sys.version_info[:2])'
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/sam.txt
	touch $@

run: run-venv
	$(BIN)/pipeline run

invoke: run-venv
	$(BIN)/pipeline invoke $(FUNCTION) $(EVENT) --offline

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv browser
	$(BIN)/pytest -q -n auto

# Cheapest first, so that a typo fails in seconds: lint, types, the template; then both Lambda
# builds, their sizes and an import of each built handler (~40 s); the test suite (~4 min on 2 cores,
# one pytest-xdist worker per core) last.
test: lint typecheck validate build-all check-size check-imports browser pytest

# tests/integration/test_report.py opens the report in headless Chromium (tests/cdp.py drives it over
# --remote-debugging-pipe). Debian's chromium package, never a browser downloaded by a tool; installed
# here so that make test runs that test instead of skipping it. A no-op when /usr/bin/chromium exists.
CHROMIUM := /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	echo "installing chromium (apt-get) for the report's browser test"; \
	$$sudo apt-get update && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y chromium

# ARCH is checked here rather than when the Makefile is read, so that an unrelated ARCH in the
# environment does not break `make run` or `make test` (which builds both architectures anyway).
build:
	@case "$(ARCH)" in x86_64|arm64) ;; *) echo "error: ARCH must be x86_64 or arm64, not '$(ARCH)'" >&2; exit 2;; esac
	@$(MAKE) --no-print-directory build-$(ARCH)

build-all: $(addprefix build-,$(ARCHS))

# sam passes only ARTIFACTS_DIR to the layer Makefiles, so the architecture reaches them through
# ARCH in the environment, and the template's Architecture parameter through --parameter-overrides.
# PYTHON is the real 3.12 interpreter (not the pyenv shim, which fails outside this repository:
# sam builds in scratch directories) and its directory goes first on PATH, where sam's Python
# workflow looks for `python3.12`. The build directory is emptied first: nothing stale ships.
$(addprefix build-,$(ARCHS)): build-%: sam-venv
	rm -rf $(BUILD_DIR_$*)
	@py="$$($(PYTHON) -c 'import sys; print(sys.executable)')" && \
	echo "sam build: $* into $(BUILD_DIR_$*) with $$py" && \
	ARCH=$* PYTHON="$$py" PATH="$$(dirname "$$py"):$$PATH" SAM_CLI_TELEMETRY=0 \
		$(SAM) build --template template.yaml --build-dir $(BUILD_DIR_$*) --parameter-overrides Architecture=$*

# sam validate --lint = the SAM transform + cfn-lint; it fails on any cfn-lint match, warnings
# included. Anything else it prints besides its verdict (a deprecation notice, say) fails the target
# too, except its weekly "SAM CLI update available" (when online). The region only has to exist:
# nothing is sent to AWS.
validate: sam-venv
	@out="$$(AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 $(SAM) validate --lint --template template.yaml 2>&1)"; \
	status=$$?; echo "$$out"; \
	[ $$status -eq 0 ] || exit $$status; \
	if echo "$$out" | grep -v -e 'is a valid SAM Template' -e 'SAM CLI update available' -e '^To download:' \
		-e '^[[:space:]]*$$' | grep -q .; then \
		echo "error: sam validate printed findings (above); fix template.yaml" >&2; exit 1; fi

# Lambda's hard limit is 250 MiB unzipped for a function and all its layers; the project keeps
# 25 MiB of it in reserve (225 MiB budget). Checks the builds as they are: run make build-all first.
check-size: venv
	$(BIN)/python -m bench.sizes --check $(BUILD_DIR_x86_64)=x86_64 $(BUILD_DIR_arm64)=arm64

# What the unit tests cannot see: a package missing from a layer's requirements.txt (the dev venv
# has everything), a handler that loads pandas & co. outside train. One fresh python3.12 per
# function, sys.path = function + layers as in /opt, nothing else (bench/coldstart.py). Only the
# build of this machine's architecture can run; the other one is named and skipped.
check-imports: venv
	$(BIN)/python -m bench.coldstart --smoke $(BUILD_DIRS)

# Measurements, not checks (none of them fails on a slow figure). Needs both builds (make build-all).
bench: venv
	$(BIN)/python -m bench.sizes $(BUILD_DIR_x86_64)=x86_64 $(BUILD_DIR_arm64)=arm64
	$(BIN)/python -m bench.coldstart $(BUILD_DIRS) --json-out $(BENCH_OUT)/coldstart.json
	$(BIN)/python -m bench.warm --json-out $(BENCH_OUT)/warm.json
	$(BIN)/python -m bench.cost --warm $(BENCH_OUT)/warm.json --coldstart $(BENCH_OUT)/coldstart.json

# A no-op `pipeline run` (everything present) against an equivalent Luigi pipeline; medians, not a check.
bench-noop: run-venv $(BENCH_STAMP)
	$(BIN)/python -m bench.noop --luigi-python $(BENCH_VENV)/bin/python

# BENCH_SCALE_ARGS=--big adds 10,000,000 rows (about 10 minutes more).
bench-scale: run-venv $(BENCH_STAMP)
	$(BIN)/python -m bench.scale --luigi-python $(BENCH_VENV)/bin/python --luigi-timeout 300 $(BENCH_SCALE_ARGS)

clean:
	rm -rf .pipeline .pytest_cache .mypy_cache .ruff_cache .aws-sam
