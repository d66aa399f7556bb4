# Two commands on a fresh machine: `make demo` (the daily check against the emulated tenant) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test quick lint unit infra tools clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Test-only tools outside the venv (checkov, Kusto language service, Azurite, Chromium); idempotent, fast when present.
tools: $(STAMP)
	bash tools/install-infra-tools.sh
	bash tools/install-report-tools.sh

test: lint tools
	$(PY) -m pytest -n 4  # I/O-bound tests (emulator, retries, subprocesses): 4 workers on 2 cores

# The inner loop: everything not marked slow (no child processes, browser, checkov or long fuzzing); `make test`
# (and CI) still runs the whole suite.
quick: $(STAMP)
	$(PY) -m pytest -n 4 -m "not slow" -q

infra: tools
	$(PY) -m pytest tests/infra -q

unit: $(STAMP)
	$(PY) -m pytest tests/unit -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .tools tools/node_modules tools/azurite/node_modules
