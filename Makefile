# Thin wrappers; README.md shows the two commands that matter: `make book`, `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SCALE  ?= tutorial
CHAPTER ?=

.PHONY: venv book test test-full test-browser browser-deps unit lint smoke-book lab reproduce \
	reproduce-all clean check-python

check-python:  ## the pinned torch wheels exist for CPython 3.11 (and the code needs >= 3.11)
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else 1)' || \
	  { echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '(not found)'); the book needs Python >= 3.11 (3.11 for the pinned torch wheels). Run: make PYTHON=python3.11 ..." >&2; exit 1; }

$(VENV)/.installed: requirements.txt pyproject.toml | check-python
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (book)" >/dev/null
	touch $@

venv: $(VENV)/.installed  ## virtual environment with the pinned requirements and lib/ (editable)

book: venv  ## execute every chapter at $(SCALE) (default tutorial) and render _build/html
	$(PY) -m lib.book --scale $(SCALE)

# The tests' models are tiny: one intra-op thread avoids OpenMP contention on 2 cores.
test: export OMP_NUM_THREADS ?= 1
test: venv browser-deps  ## lint, unit tests, chapters at smoke scale and full-scale dry runs, the book in a browser
	@t=$$(date +%s); $(VENV)/bin/ruff check lib tests data_scripts || exit 1; \
	  echo "[test] lint: $$(( $$(date +%s) - t )) s"
	@t=$$(date +%s); $(PY) -m pytest -n 2 --dist loadfile --durations=25 || exit 1; \
	  echo "[test] pytest (unit, chapters at smoke scale, full-scale dry runs, browser): $$(( $$(date +%s) - t )) s"
	@$(MAKE) --no-print-directory test-browser

test-browser: export OMP_NUM_THREADS ?= 1
test-browser: venv browser-deps  ## the book built at smoke scale, every page opened in headless Chromium
	@t=$$(date +%s); $(PY) -m lib.book --scale smoke --no-network || exit 1; \
	  echo "[test] book build at smoke scale (warnings as errors): $$(( $$(date +%s) - t )) s"
	@t=$$(date +%s); $(PY) -m lib.bookcheck _build/html --screenshots _build/screenshots || exit 1; \
	  echo "[test] every page in Chromium, desktop and phone width: $$(( $$(date +%s) - t )) s"

browser-deps:  ## Debian's chromium + chromedriver for the browser test (apt-get as root)
	@bash scripts/ensure-chromium.sh

test-full: export OMP_NUM_THREADS ?= 1
test-full: venv  ## every chapter's full configuration end to end on fixture data (dry runs)
	BOOK_TEST_FULL=1 $(PY) -m pytest -m fullscale tests/test_fullscale.py

lab: venv  ## JupyterLab on the chapters
	$(VENV)/bin/jupyter lab chapters/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

reproduce: venv  ## one chapter: make reproduce CHAPTER=foundations SCALE=full
	$(PY) -m lib.reproduce $(CHAPTER) --scale $(SCALE)

reproduce-all: venv  ## every chapter at $(SCALE), a summary table at the end
	$(PY) -m lib.reproduce --all --scale $(SCALE)

clean:  ## executed notebooks, rendered book, results (the artifact cache is kept)
	rm -rf _build results
