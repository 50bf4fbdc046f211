# Two entry points for a fresh machine: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt scoring_job/requirements.txt forecast_job/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
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

demo: install  # Azurite + devhost, the clip dropped into input/, followed to out/ (tools/demo.py)
	$(PY) -m tools.demo

lint: install
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest

bench: install
	$(PY) bench/scoring.py

clean:
	rm -rf $(VENV) node_modules out
