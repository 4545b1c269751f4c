# Two entry points (see README): `make demo` runs the main job on the embedded synthetic dataset,
# `make test` runs the test suite. Both create the virtual environment first when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
TORCH_CPU ?= 2.13.0+cpu

.PHONY: demo test test-all venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU build of torch first: pyproject.toml admits a range, and the registry's Linux wheels in
	# that range pull several GB of CUDA libraries; pip then keeps this one (it satisfies the range)
	$(PY) -m pip install --quiet 'torch==$(TORCH_CPU)'
	$(PY) -m pip install --quiet -e .
	touch $(STAMP)

# what the tests need on top: pytest, and the ray extra (the default suite runs the Ray engine on a
# simulated cluster; ray[data] brings pyarrow and no torch or CUDA package)
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,ray]'
	touch $(TEST_STAMP)

venv: $(STAMP)

# The main job on the embedded synthetic dataset, as one study (python -m studies): every front-end
# of the study plus the two example user front-ends of examples/, at the small width with 3 random
# seeds (the study's 3 runs), the study's SVM/ELM grids per front-end, then the comparison report
# (runs/report). Rerunning does only what is missing.
DEMO_SEEDS ?= 0 1 2
DEMO_ARCHS ?= all examples/waveform_cnn.py:WaveformCNN examples/spectrogram_cnn.py:SpectrogramCNN
demo: $(STAMP)
	$(PY) -m studies --arch $(DEMO_ARCHS) --width small --seed $(DEMO_SEEDS)

test: $(TEST_STAMP)
	$(PY) -m pytest -q

test-all: $(TEST_STAMP)
	$(PY) -m pytest -q -m ''

clean:
	rm -rf $(VENV) runs
