# The one place that knows how to set up, train, test and benchmark ganforge.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup train test test-all test-fast lint format bench clean

# Bytecode is written for what a run imports, not for the whole environment: it holds ~19,000
# modules, of which training imports ~4,000, so compiling all of them at set-up (pip's default:
# 76 s on this 2-core machine, 53 s with compileall on both cores) costs more than importing the
# training code once at set-up (~25 s), which writes the bytecode of exactly those. Modules only
# the tests import are compiled on first import. Where PYTHONDONTWRITEBYTECODE is set, nothing would
# be cached and every process would compile its imports again, so the recipes here leave it unset.
unexport PYTHONDONTWRITEBYTECODE

setup: $(STAMP)

# Recreate the environment only when the package metadata changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e ".[dev]"
	$(BIN)/python -c "import ganforge.train"
	@touch $(STAMP)

# The default experiment; `make train ARGS="seed=3"` adds overrides, `make train EXPERIMENT=...` swaps it.
EXPERIMENT ?= dcgan_mnist5k

train: $(STAMP)
	$(BIN)/ganforge-train experiment=$(EXPERIMENT) $(ARGS)

# One pytest worker per core (pytest-xdist), each test file on one worker so that its module
# fixtures are built once; `make test TEST_WORKERS=0` runs everything in this process.
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# `make test` leaves out the tests marked `extended` (variants of what another test checks) to stay
# within 10 minutes on 2 cores; `make test-all` runs them too.
test: $(STAMP)
	$(PYTEST) -m "not extended" $(ARGS)

test-all: $(STAMP)
	$(PYTEST) $(ARGS)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow and not extended" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache
