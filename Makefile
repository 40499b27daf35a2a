# The one place that knows how to set up, train, test and benchmark ganforge.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup train test test-fast lint format bench clean

setup: $(STAMP)

# Recreate the environment only when the package metadata changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

# The default experiment; `make train ARGS="seed=3"` adds overrides, `make train EXPERIMENT=...` swaps it.
EXPERIMENT ?= dcgan_mnist5k

train: $(STAMP)
	$(BIN)/ganforge-train experiment=$(EXPERIMENT) $(ARGS)

# One pytest worker per core (pytest-xdist), each test file on one worker so that its module
# fixtures are built once; `make test TEST_WORKERS=0` runs everything in this process.
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(PYTEST) $(ARGS)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow" $(ARGS)

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
