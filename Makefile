# ruledrive: the two commands a fresh Debian machine (Python 3.11) needs are `make demo` and
# `make test`; both create .venv and install what is missing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && echo sudo)
GOLDEN := tests/golden/drive.mcap
# Two pytest workers (pytest-xdist), each test module whole on one worker (its module-scoped
# fixtures, the trained models, are built once): the broker tests wait while the training tests
# compute, so the suite takes ~2/3 of the serial time on 2 cores.
PYTEST_PARALLEL ?= -n 2 --dist loadscope
STAMP  := $(VENV)/.installed

.PHONY: help install mosquitto broker demo test test-fast lint golden golden-recording ci \
        compose-check clean

help:
	@echo "make demo      set up (.venv, mosquitto) and run the end-to-end demo"
	@echo "make test      set up and run the whole test suite (what CI runs)"
	@echo "make test-fast tests without the slow/TensorFlow ones"
	@echo "make lint      ruff (check, format), import-linter, mypy"
	@echo "make golden    re-record the golden reference decisions (on purpose only)"
	@echo "make ci        run .ci/run"

$(STAMP): pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || \
	  ($(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV))
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[train,dev]'
	touch $@

install: $(STAMP)

mosquitto:
	@command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || \
	  ($(SUDO) apt-get update && $(SUDO) apt-get install -y mosquitto)

broker: mosquitto
	deploy/local-broker.sh

demo: install mosquitto
	$(BIN)/ruledrive demo

test: install broker
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL)

test-fast: install broker
	$(BIN)/python -m pytest -q -m "not slow and not tf"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The golden reference depends on the default model: regenerate it when the model changes on
# purpose, review the diff of tests/golden/reference.json, and commit both.
golden: install broker
	$(BIN)/ruledrive replay $(GOLDEN) --rate max --no-progress --out out/golden \
	  --serve-model models/ruledrive-default.onnx --prefix ruledrive/golden-$$$$ \
	  --update-reference tests/golden/reference.json

# Regenerate the golden recording itself (rarely: it changes every reference decision).
golden-recording: install
	$(BIN)/ruledrive generate --scenes 60 --seed 7 --split test --no-progress --out out/golden-gen
	cp out/golden-gen/test.mcap $(GOLDEN)

compose-check: install
	$(BIN)/python -m pytest -q tests/deploy

ci:
	.ci/run

clean:
	rm -rf out .pytest_cache .ruff_cache .mypy_cache
