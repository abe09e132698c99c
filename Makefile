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

.PHONY: install browser broker endpoint demo test test-fast lint bench clean

install: $(STAMP) endpoint

# The report test opens the HTML report in headless Chromium: Debian's package, installed only when it is
# missing, apt-get exists and we are root; anywhere else that one test skips and prints why.
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the headless report test will skip"; \
	  else echo "no chromium and no apt-get as root: the headless report test will skip"; fi; fi

# The Globus Compute tests run a real RabbitMQ broker: Debian's rabbitmq-server, installed like Chromium
# (only when missing, apt-get exists and we are root); anywhere else those tests skip and print why.
broker:
	@if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null) \
	      || echo "could not install rabbitmq-server: the Globus Compute endpoint tests will skip"; \
	  else echo "no rabbitmq-server and no apt-get as root: the Globus Compute endpoint tests will skip"; fi; fi

# A real globus-compute-endpoint in a venv of its own, as on a compute node: the endpoint package plus the
# extractors' libraries (the tests put only the `extractors` package on its workers' PYTHONPATH).
EP_VENV := .venv-endpoint
EP_STAMP := $(EP_VENV)/.installed
endpoint: $(EP_STAMP)

$(EP_STAMP): pyproject.toml
	test -x $(EP_VENV)/bin/python || $(PYTHON) -m venv $(EP_VENV)
	$(EP_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(EP_VENV)/bin/python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
	  print('\n'.join(['globus-compute-endpoint==4.19.*'] + [d for d in p['dependencies'] if d.startswith('pandas')] \
	  + p['optional-dependencies']['science']))" > $(EP_VENV)/requirements.txt
	$(EP_VENV)/bin/python -m pip install --quiet -r $(EP_VENV)/requirements.txt
	touch $(EP_STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[science,dask,dev]'
	touch $(STAMP)

demo: install
	$(BIN)/xtract run examples --metadata-dir demo-metadata --grouper related

test: install browser broker
	$(BIN)/python -m pytest -q

test-fast: install browser broker
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/crawl.py
	$(BIN)/python bench/crawl_memory.py
	$(BIN)/python bench/end_to_end.py
	$(BIN)/python bench/extract_formats.py

clean:
	rm -rf $(VENV) $(EP_VENV) demo-metadata .pytest_cache
