# GPT-2 from Scratch. Every target sets itself up: `make test` and `make book` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# PyTorch goes in first, so that nothing later pulls a multi-GB CUDA build onto a CPU machine.
# A CPU wheel of torch 2.13.0 lies in /opt/wheels on the machines this book is built on; elsewhere
# pip picks the right build for your platform (override with `make TORCH_SPEC='torch==2.x' ...`).
TORCH_SPEC ?= $(if $(wildcard /opt/wheels/torch-2.13.0*),torch==2.13.0,torch>=2.6)
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with tools/nbval_sanitize.cfg --nbval-cell-timeout=600
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM = false
export PYDEVD_DISABLE_FILE_VALIDATION = 1

.PHONY: setup test book book-check export export-check execute bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[book,test]"
	touch $(STAMP)

setup: $(STAMP)                  ## create .venv, install gpt2lib and the book's tools, fetch GPT-2's vocabulary
	$(PY) tools/fetch_gpt2_vocab.py

export: $(STAMP)                 ## write gpt2lib/ from the notebooks
	$(PY) tools/export.py

export-check: $(STAMP)           ## fail, naming each file, if gpt2lib/ is stale
	$(PY) tools/export.py --check

# Two workers on two cores: each runs one thread, or PyTorch's threads fight and everything slows ~10x.
test: setup export-check         ## re-execute every chapter (nbval, strict) and run tests/
	OMP_NUM_THREADS=1 $(PY) -m pytest $(NBVAL) -n 2 --dist loadfile notebooks/
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 tests/

book: setup                      ## build the HTML book into _build/html; warnings are errors
	$(VENV)/bin/jupyter-book build . --path-output . -W -n --keep-going

book-check: book                 ## open each built chapter in headless Chromium; screenshots in _build/screenshots
	$(PY) tools/book_check.py

execute: setup                   ## re-execute notebooks in place (NB=notebooks/01_tokenization.ipynb for one)
	OMP_NUM_THREADS=1 $(PY) tools/nbtool.py execute $(or $(NB),notebooks/*.ipynb)

bench: setup                     ## run the benchmarks (ratios against tiktoken / transformers)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf _build .venv .cache
