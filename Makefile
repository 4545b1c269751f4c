# Two entry points (see README): `make demo` runs the main job on the embedded synthetic dataset,
# `make test` runs the test suite. Both create the virtual environment first when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The main job on the embedded synthetic dataset: every front-end at the small width with 3 random
# seeds (the study's 3 runs), the study's SVM/ELM grids per front-end, then the comparison report.
DEMO_SEEDS ?= 0 1 2
demo: $(STAMP)
	$(PY) -m features.extract --arch all --width small --seed $(DEMO_SEEDS)
	for first in runs/features/synthetic/*_small_random_seed0; do \
	  $(PY) -m classifiers.grid --features $${first%seed0}seed* || exit 1; \
	done
	$(PY) -m report runs/results --out runs/report

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

clean:
	rm -rf $(VENV) runs
