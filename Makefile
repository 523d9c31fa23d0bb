# `make demo` and `make test` do all set-up on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
OUT ?= runs/demo

.PHONY: demo test lint install clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# reproduce exits 1 when a claim did not hold: the demo still did its job (the report says which and why);
# any other failure (bad arguments, a crash) fails the demo.
demo: install
	$(VENV)/bin/deepnotes reproduce --quick --out $(OUT) --force; rc=$$?; \
	echo "report: $(OUT)/report.html  (also $(OUT)/report.md, $(OUT)/results.json)"; \
	if [ $$rc -eq 1 ]; then echo "some claims did not hold: see the report"; fi; test $$rc -le 1

lint: install
	$(VENV)/bin/ruff check .

test: install lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
