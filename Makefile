# Two entry points for a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser demo test lint bench clean

# The requirements, then this project itself (editable, no dependencies) for the `restyle` command.
$(STAMP): requirements.txt requirements-dev.txt scoring_job/requirements.txt forecast_job/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# checkov (infra checks) lives in its own venv: its pins would downgrade packages torch needs.
CHECKOV := $(VENV)/checkov/.requirements
$(CHECKOV): infra/requirements-checkov.txt | $(STAMP)
	$(PYTHON) -m venv --clear $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet -r infra/requirements-checkov.txt
	cp infra/requirements-checkov.txt $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) $(CHECKOV) node_modules/.installed

# Headless Chromium and its driver (Debian packages) for the jobs page's browser test
# (tests/test_jobs_page.py); installed once, quietly, with sudo unless already root.
CHROMEDRIVER := /usr/bin/chromedriver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMEDRIVER):
	@command -v apt-get >/dev/null || { echo "install Chromium and its driver (chromium, chromium-driver)"; exit 1; }
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
browser: $(CHROMEDRIVER)

demo: install  # Azurite + devhost, the clip dropped into input/, followed to out/ (tools/demo.py)
	$(PY) -m tools.demo

lint: install
	$(PY) -m ruff check .

test: lint browser
	RESTYLE_REQUIRE_BROWSER=1 $(PY) -m pytest

bench: install
	$(PY) bench/scoring.py

clean:
	rm -rf $(VENV) node_modules out
