# Two entry points for a fresh machine (see README.md):
#   make demo   build the environment if needed, then run the whole pipeline on generated demo data
#   make test   build the environment if needed, then run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
RUN_DIR ?= runs/demo

.PHONY: demo demo-multilabel test lint format bench wheelhouse clean-demo

# The notebooks extra (requirements-notebooks.txt) is installed too: `make demo` users open the
# notebooks next, and the notebook tests run them in a Jupyter kernel.
$(STAMP): requirements.txt requirements-notebooks.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt -r requirements-notebooks.txt -r requirements-dev.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m emo_utils demo --data $(DEMO_DIR) --run $(RUN_DIR)

# The multi-label tagging demo (Freesound-style labels), end to end on CPU.
demo-multilabel: $(STAMP)
	$(PY) -m emo_utils demo --task multilabel

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

# Offline Kaggle kernels: `make wheelhouse` fills $(WHEELHOUSE)/ with the emo_utils wheel and the
# binary wheels, for Python $(KAGGLE_PYTHON) on x86-64 Linux, of every package it needs at the
# versions installed in $(VENV) (listed in $(WHEELHOUSE)/tested-versions.txt), except torch and
# torchvision, which the Kaggle image provides with CUDA. Upload the folder as a Kaggle dataset
# named emo-utils-wheelhouse; the notebooks' environment cell then runs
#   pip install --no-index --find-links /kaggle/input/emo-utils-wheelhouse emo_utils
# which installs emo_utils plus only what the image lacks or has in too old a version.
# KAGGLE_PYTHON is the image's Python (`!python --version` in a kernel). build/ is removed first
# so that setuptools cannot pack stale modules into the wheel.
WHEELHOUSE ?= wheelhouse
KAGGLE_PYTHON ?= 3.11.13
KAGGLE_PLATFORMS ?= manylinux2014_x86_64 $(foreach v,24 25 26 27 28 29 30 31 32 33 34 35,manylinux_2_$(v)_x86_64)
WHEELHOUSE_SKIP ?= torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*

# Prints name==version of every installed distribution emo_utils needs (recursively, with extras).
define WHEELHOUSE_PINS
import importlib.metadata as md, re, sys
from packaging.requirements import Requirement
def norm(name): return re.sub(r"[-_.]+", "-", name).lower()
todo, done, pins = [("emo_utils", "")], set(), {}
while todo:
    name, extra = todo.pop()
    name = norm(name)
    if (name, extra) in done or re.fullmatch(sys.argv[1], name):
        continue
    done.add((name, extra))
    dist = md.distribution(name)
    pins[name] = dist.version
    for req in map(Requirement, dist.requires or []):
        if req.marker is None or req.marker.evaluate({"extra": extra}):
            todo += [(req.name, e) for e in ("", *req.extras)]
print("\n".join(f"{n}=={v}" for n, v in sorted(pins.items()) if n != "emo-utils"))
endef
export WHEELHOUSE_PINS

wheelhouse: $(STAMP)
	rm -rf $(WHEELHOUSE) build
	$(PY) -m pip wheel --no-deps -w $(WHEELHOUSE) .
	$(PY) -c "$$WHEELHOUSE_PINS" '$(WHEELHOUSE_SKIP)' > $(WHEELHOUSE)/tested-versions.txt
	$(PY) -m pip download --no-deps --only-binary=:all: --python-version $(KAGGLE_PYTHON) \
		$(addprefix --platform ,$(KAGGLE_PLATFORMS)) -d $(WHEELHOUSE) -r $(WHEELHOUSE)/tested-versions.txt
	@echo "$(WHEELHOUSE)/: $$(ls $(WHEELHOUSE)/*.whl | wc -l) wheels, $$(du -sh $(WHEELHOUSE) | cut -f1); upload it as the Kaggle dataset emo-utils-wheelhouse"

clean-demo:
	rm -rf $(DEMO_DIR) $(RUN_DIR) data/demo_multilabel runs/demo_multilabel
