# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   -- create .venv, install, run the main job on examples/
#   make test   -- create .venv if needed, run the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: install browser demo test test-fast lint bench clean

install: $(STAMP)

# The report test opens the HTML report in headless Chromium: Debian's package, installed only when it is
# missing, apt-get exists and we are root; anywhere else that one test skips and prints why.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the headless report test will skip"; \
	  else echo "no chromium and no apt-get as root: the headless report test will skip"; fi; fi

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[science,dask,dev]'
	touch $(STAMP)

demo: install
	$(BIN)/xtract run examples --metadata-dir demo-metadata --grouper related

test: install browser
	$(BIN)/python -m pytest -q

test-fast: install browser
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/crawl.py
	$(BIN)/python bench/crawl_memory.py
	$(BIN)/python bench/end_to_end.py
	$(BIN)/python bench/extract_formats.py

clean:
	rm -rf $(VENV) demo-metadata .pytest_cache
