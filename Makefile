# resnet-lab: two commands on a fresh machine with Python 3.10+.
#   make book   build the HTML book (creates .venv on first use)
#   make test   everything CI checks (lint, unit tests, notebook checks, nbval in smoke mode, strict book build)

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install
HTML   := _build/html/index.html

# Sphinx warnings are errors; --keep-going reports all of them before failing. --all rebuilds every page:
# an incremental build does not repeat the warnings of unchanged pages and would pass a broken book.
BOOK_FLAGS := --all --warningiserror --keep-going
NBVAL_FLAGS := --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
# Notebooks run by Jupyter use the inline backend for figures: never inherit a non-interactive MPLBACKEND.
NB_ENV := env -u MPLBACKEND

.DEFAULT_GOAL := help
.PHONY: help install book test lint unit check-notebooks nbval book-strict notebooks release clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

# Bootstrap, re-run only when the requirements, the package metadata or the pinned web assets change. The web
# assets (MathJax, require.js, the widget manager: tools/web_assets.lock.json) come from the npm registry, checked
# against their sha512, into .venv/share/resnet-lab-web: the built book serves them, so it works offline.
$(STAMP): requirements.txt pyproject.toml tools/web_assets.lock.json tools/fetch_web_assets.py \
		tools/widgets-require-config.js
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "resnet-lab needs Python 3.10 or newer: run 'make PYTHON=python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install -e .
	$(BIN)/python tools/fetch_web_assets.py
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the requirements and the resnet_lab package (editable)

book: $(STAMP)  ## build the HTML book into _build/html
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)
	@echo
	@echo "Book built: open file://$(CURDIR)/$(HTML)"

test: lint unit check-notebooks nbval book-strict browser  ## run every check CI runs
	@echo "make test: all checks passed"

lint: $(STAMP)  ## ruff over the package, tests and notebooks; actionlint over the GitHub workflow
	$(BIN)/ruff check .
	$(BIN)/actionlint .github/workflows/*.yml

unit: $(STAMP)  ## unit tests (tests/)
	MPLBACKEND=Agg $(BIN)/pytest tests/

check-notebooks: $(STAMP)  ## notebooks are in the toc, executed in normal mode, error-free, widget state kept
	$(BIN)/python tests/check_notebooks.py

nbval: $(STAMP)  ## re-run every notebook in smoke mode and compare the cells tagged nbval-check-output
	$(NB_ENV) RESNET_LAB_SMOKE=1 $(BIN)/pytest $(NBVAL_FLAGS) notebooks/

book-strict: $(STAMP)  ## build the book with warnings as errors (broken references fail)
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)

# The browser test needs headless Chromium (Debian: apt-get install chromium). Where it is missing, the test fails
# and says how to install it, unless the reader opts out: `make test BROWSER=skip` (or RESNET_LAB_BROWSER=skip in
# the environment); the browser unit tests in tests/test_browser.py then skip too. CI never opts out.
RESNET_LAB_BROWSER ?= $(BROWSER)
export RESNET_LAB_BROWSER
.PHONY: jupyter-view browser

jupyter-view: $(STAMP)  ## render the notebooks as Jupyter and Colab show them, into _build/jupyter
	$(BIN)/python tools/jupyter_view.py

browser: jupyter-view  ## open every page of _build/html and _build/jupyter in headless Chromium, offline
	$(BIN)/python tests/browser_check.py

# `make notebooks NOTEBOOKS=notebooks/03_blocks.ipynb` re-executes one chapter.
NOTEBOOKS ?= notebooks/*.ipynb
notebooks: $(STAMP)  ## re-execute every notebook in normal mode to refresh the committed outputs (slow)
	$(NB_ENV) -u RESNET_LAB_SMOKE $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.record_timing=False \
		--ExecutePreprocessor.store_widget_state=True $(NOTEBOOKS)
	$(BIN)/python tests/check_notebooks.py --clear-solutions

release: $(STAMP)  ## build the sdist and wheel into dist/, check them in a fresh venv, print how to tag them
	$(BIN)/python tools/release.py

clean:  ## remove the built book and caches (keeps .venv)
	rm -rf _build .pytest_cache .ruff_cache dist
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
