# Two entry points: `make demo` (set up, then run the quick-start experiment) and `make test`.
#
# Installs come from requirements/lock.txt (exact versions with hashes, CPU torch), the lock for
# CPython 3.11 on Linux x86-64, which CI and the reference machine use. On another Python or platform
# `make LOCK= test` installs from the package's version ranges instead; `make lock` refreshes the lock.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK ?= requirements/lock.txt
# Extras installed when LOCK is empty (the lock holds every extra: dev, ray, evotorch, tensorboard, mlflow).
EXTRAS ?= dev,ray
PIP := $(PY) -m pip --quiet --disable-pip-version-check
export TRAINLAB_DATA ?= $(abspath ../shared/datasets)

.PHONY: demo test test-all typecheck lint-imports bench install lock clean

$(VENV)/.installed: pyproject.toml Makefile $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
ifneq ($(LOCK),)
	$(PIP) install --require-hashes --no-deps -r $(LOCK)
	$(PIP) install --no-deps --no-build-isolation -e .
else
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[$(EXTRAS)]'
endif
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/trainlab quickstart

# The README's test command (CI runs it through .ci/run): type check, import contract, test suite.
test: $(VENV)/.installed typecheck lint-imports
	$(PY) -m pytest

test-all: $(VENV)/.installed typecheck lint-imports
	$(PY) -m pytest -m ''

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

lint-imports: $(VENV)/.installed
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

# Re-resolve every pin from the version ranges in pyproject.toml (needs the package index).
lock:
	test -x .lock-venv/bin/pip-compile || ($(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet pip-tools==7.6.2)
	.lock-venv/bin/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-find-links --extra dev --extra ray --extra evotorch --extra tensorboard --extra mlflow -c requirements/torch-cpu.txt \
		-o requirements/lock.txt pyproject.toml requirements/build.in

clean:
	rm -rf $(VENV) .lock-venv build *.egg-info src/*.egg-info .pytest_cache .mypy_cache
