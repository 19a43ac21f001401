# Two entry points for a fresh machine (see README.md):
#   make run    install into .venv, then run the full analysis on built-in Old Faithful
#   make test   install into .venv, then run the default test suite
#   make docs   build the documentation site into docs/_build/html (warnings are errors)
PYTHON ?= python3.12
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bayesmix-installed
OUT    ?= bayesmix-report

.PHONY: install run test test-slow lint bench bench-quick docs notebooks figures check-site

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@echo "compiling the numba and PyTensor kernels once: a tiny analysis (about 40 s)"
	rm -rf $(VENV)/warmup-report
	$(BIN)/bayesmix fit --k 1-2 --mcmc-k 2 --draws 30 --tune 30 --chains 1 \
		--gibbs-draws 30 --quiet --out $(VENV)/warmup-report
	touch $(STAMP)

install: $(STAMP)

DOCS_STAMP := $(VENV)/.bayesmix-docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $(DOCS_STAMP)

run: $(STAMP)
	$(BIN)/bayesmix fit --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --durations=15

test-slow: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m slow --durations=15

lint: $(STAMP)
	$(BIN)/ruff check bayesmix tests benchmarks
	$(BIN)/ruff format --check bayesmix tests benchmarks

# every benchmarks/bench_*.py; full runs rewrite their sections of benchmarks/RESULTS.md
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# smoke runs of every benchmark (RESULTS.md left unchanged)
bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --quick

# Documentation (docs/README.md). Notebooks are rendered from their stored outputs;
# figures are only drawn when missing (make figures redraws them).
docs: $(DOCS_STAMP)
	$(BIN)/python docs/make_figures.py
	$(BIN)/python -m sphinx -b html -W --keep-going -n docs docs/_build/html
	@echo "open docs/_build/html/index.html"

notebooks: $(DOCS_STAMP)
	$(BIN)/python docs/run_notebooks.py

figures: $(DOCS_STAMP)
	$(BIN)/python docs/make_figures.py --force

check-site: $(DOCS_STAMP)
	$(BIN)/python docs/check_site.py
