# Quick start: `make demo` and `make test` work on a fresh clone with nothing installed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The first install step pins torch (see README, "Installing"): a newer torch must not be pulled in by timm/open_clip.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: demo test install install-dev browser-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_PINS)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev,openvino]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/retbench demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests (tests/browser, marker `browser`) drive Debian's Chromium through Playwright and skip
# cleanly without it. Installing it needs root (CI runs as root); a failure here never fails the build.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || \
	  (timeout 900 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
	    --no-install-recommends chromium >/dev/null) || \
	  echo "chromium unavailable: browser tests will skip"

clean:
	rm -rf $(VENV) retbench-demo .pytest_cache
