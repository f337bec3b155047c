VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: run test venv peers lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: venv
	$(VENV)/bin/gearview

peers:
	@tools/install-peers.sh

lint: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check gearview tests benchmarks

# The whole suite with this OS's file I/O, then the tests that write files
# again with the portable one (what Windows and macOS run).
test: venv peers
	$(VENV)/bin/lint-imports
	GEARVIEW_IO=auto QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q -p no:cacheprovider
	GEARVIEW_IO=portable QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q -p no:cacheprovider \
		tests/engine tests/peers tests/cli --ignore-glob='*imaging*' --ignore-glob='*render*'

bench: venv peers
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
