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
.PHONY: help install book test lint unit check-notebooks nbval book-strict notebooks clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 18

# Bootstrap, re-run only when the requirements or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "resnet-lab needs Python 3.10 or newer: run 'make PYTHON=python3.11 ...'"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install -e .
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the requirements and the resnet_lab package (editable)

book: $(STAMP)  ## build the HTML book into _build/html
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)
	@echo
	@echo "Book built: open file://$(CURDIR)/$(HTML)"

test: lint unit check-notebooks nbval book-strict  ## run every check CI runs
	@echo "make test: all checks passed"

lint: $(STAMP)  ## ruff over the package, tests and notebooks
	$(BIN)/ruff check .

unit: $(STAMP)  ## unit tests (tests/)
	MPLBACKEND=Agg $(BIN)/pytest tests/

check-notebooks: $(STAMP)  ## notebooks are in the toc, executed in normal mode, error-free, widget state kept
	$(BIN)/python tests/check_notebooks.py

nbval: $(STAMP)  ## re-run every notebook in smoke mode and compare the cells tagged nbval-check-output
	$(NB_ENV) RESNET_LAB_SMOKE=1 $(BIN)/pytest $(NBVAL_FLAGS) notebooks/

book-strict: $(STAMP)  ## build the book with warnings as errors (broken references fail)
	$(BIN)/jupyter-book build . $(BOOK_FLAGS)

notebooks: $(STAMP)  ## re-execute every notebook in normal mode to refresh the committed outputs (slow)
	$(NB_ENV) -u RESNET_LAB_SMOKE $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=1800 --ExecutePreprocessor.record_timing=False \
		--ExecutePreprocessor.store_widget_state=True notebooks/*.ipynb
	$(BIN)/python tests/check_notebooks.py

clean:  ## remove the built book and caches (keeps .venv)
	rm -rf _build .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
