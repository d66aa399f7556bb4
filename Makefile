# Two commands on a fresh machine: `make demo` (the daily check against the emulated tenant) and `make test`.
# The app runs on Python 3.13 (pyproject, the Flex runtime in infra/). pyenv's `python3.13` shim fails unless 3.13 is
# the selected version, so after it try pyenv's installed versions directly; `make PYTHON=/path/python3.13` overrides.
is_313 = $(shell "$(1)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1 && echo "$(1)")
PYENV_DIRS := $(sort $(PYENV_ROOT) $(shell pyenv root 2>/dev/null) $(HOME)/.pyenv)
PYTHON_CANDIDATES := python3.13 $(sort $(wildcard $(addsuffix /versions/3.13*/bin/python3.13,$(PYENV_DIRS)))) \
	/usr/local/bin/python3.13 /usr/bin/python3.13
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach candidate,$(PYTHON_CANDIDATES),$(call is_313,$(candidate))))
endif
unexport PYTHON  # tools/install-infra-tools.sh reads PYTHON for checkov's own venv (3.11, pinned apart)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# A .venv from before the move to 3.13 (or from another interpreter) is rebuilt, not reused.
VENV_IS_313 := $(call is_313,$(PY))

.PHONY: demo test quick lint unit infra tools clean FORCE

$(STAMP): requirements.txt requirements-dev.txt $(if $(VENV_IS_313),,FORCE)
	@test -n "$(PYTHON)" && test -n "$(call is_313,$(PYTHON))" || { \
	  echo "Python 3.13 is required: $(if $(PYTHON),$(PYTHON) is not 3.13,none found (tried $(PYTHON_CANDIDATES)))." >&2; \
	  echo "Install it (e.g. pyenv install 3.13) or run make PYTHON=/path/to/python3.13." >&2; exit 2; }
	$(if $(VENV_IS_313),,rm -rf $(VENV))
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache  # the layering of shared/ (pyproject.toml [tool.importlinter])
	$(VENV)/bin/mypy  # --strict on shared/ (pyproject.toml [tool.mypy])

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
