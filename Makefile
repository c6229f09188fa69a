# Two entry points for a fresh machine (see README.md):
#   make demo   build the environment if needed, then run the whole pipeline on generated demo data
#   make test   build the environment if needed, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
RUN_DIR ?= runs/demo

.PHONY: demo test lint format bench wheelhouse clean-demo

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m emo_utils demo --data $(DEMO_DIR) --run $(RUN_DIR)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

wheelhouse: $(STAMP)
	rm -rf wheelhouse
	$(PY) -m pip wheel --no-deps -w wheelhouse .
	$(PY) -m pip download -d wheelhouse librosa soundfile soxr audioread lazy_loader pooch msgpack numba llvmlite timm

clean-demo:
	rm -rf $(DEMO_DIR) $(RUN_DIR)
