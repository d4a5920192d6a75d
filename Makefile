# Quick start: `make run` (set up, then train the default profile) and `make test`.
# Edit-test loop: `make lint test-fast` (ruff, then the tests that start no server).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_DATA := ../shared/data/aclImdb_v1_labeled.tar.gz
SHARED_UNLABELED := ../shared/data/aclImdb_v1_unsup.tar.gz
# On a machine with the shared copy of the dataset, use it instead of downloading; its unlabeled
# reviews (the labeled copy has no train/unsup/) are the pretraining's data.unlabeled_source.
ifeq ($(REVIEWFLOW_DATA),)
ifneq ($(wildcard $(SHARED_DATA)),)
export REVIEWFLOW_DATA := $(abspath $(SHARED_DATA))
endif
endif
ifeq ($(REVIEWFLOW_UNLABELED),)
ifneq ($(wildcard $(SHARED_UNLABELED)),)
export REVIEWFLOW_UNLABELED := $(abspath $(SHARED_UNLABELED))
endif
endif
export PREFECT_SERVER_EPHEMERAL_ENABLED ?= true

.PHONY: setup browser postgres run lint test test-fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

run: setup
	$(BIN)/reviewflow train --profile default

# The browser tests drive Debian's Chromium and ChromeDriver (never a browser downloaded at run time).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# The team tests run a real PostgreSQL from Debian's package, in a temporary folder of their own.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

lint: setup
	$(BIN)/ruff check .

# Two workers, each taking whole test files (their module fixtures: one server, one training): much of an end-to-end
# test is waiting on servers and processes, so two at once finish the suite sooner on two cores than one after another.
test: setup browser postgres
	$(BIN)/pytest -q -n 2 --dist loadgroup

# The tests that start no server (no MLflow, Prefect or browser): code, data and model tests.
test-fast: setup
	$(BIN)/pytest -q -m "not e2e" tests/code tests/model tests/real_dataset

clean:
	rm -rf $(VENV) data/cache data/runs
