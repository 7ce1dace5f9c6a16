# Two entry points on a fresh machine with Python 3.11: `make demo` and `make test`.
# torch is installed first and pinned by TORCH_SPEC: an unpinned torch pulls gigabytes of CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_ARGS ?=
ABLATION_ARGS ?=

.PHONY: demo test lint test-ui ablation install install-dev bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# The package with its training extra (accelerate, datasets, evaluate): what the demo needs.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install -e '.[train]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no \
		--dynamo_backend no examples/train_mir.py $(DEMO_ARGS)

test: install-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

# Formatting and lint (ruff), and the layers of the package (import-linter: pyproject.toml's contracts).
lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# The Gradio app driven in headless Chromium (Debian's chromium + chromium-driver); not part of `make test`.
test-ui: install-dev
	$(BIN)/pip install -e '.[ui-test]'
	@echo "test-ui: installing Debian's chromium and chromium-driver with apt-get (needs root) unless /usr/bin/chromedriver exists"
	test -x /usr/bin/chromedriver || (apt-get update && apt-get install -y chromium chromium-driver)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests/ui/test_app_ui.py

# The temporal ablation on the demo task: 4 variants x 3 seeds, a Markdown table and a PNG plot.
ablation: install
	$(BIN)/pip install -e '.[plot]'
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/ablation_temporal.py $(ABLATION_ARGS)

bench: install
	$(BIN)/python benchmarks/bench_encoder.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_video_io.py
	$(BIN)/python benchmarks/bench_metrics.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
