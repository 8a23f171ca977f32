# GPT-2 from Scratch. Every target sets itself up: `make test` and `make book` work on a fresh clone.
PYTHON ?= python3
# pyenv's shims answer only for its active version; PYTHON=python3.12 then takes pyenv's own 3.12.
PYTHON_BIN := $(shell $(PYTHON) -c '' 2>/dev/null && echo $(PYTHON) || \
                ls -d $$(pyenv root 2>/dev/null)/versions/$(patsubst python%,%,$(PYTHON)).*/bin/python 2>/dev/null | tail -n 1)
# One environment per interpreter: `make test PYTHON=python3.12` never reuses the 3.11 one.
VENV   ?= $(if $(filter python3,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
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

# torch threads per notebook process, and notebooks executed at once (CI also runs THREADS=2 WORKERS=1)
THREADS ?= 1
WORKERS ?= 2

.PHONY: setup test nbval book book-check export export-check execute bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON_BIN)" || { echo "error: no interpreter '$(PYTHON)' here; install it or give PYTHON=path/to/python" >&2; exit 1; }
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
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
test: setup export-check nbval   ## re-execute every chapter (nbval, strict) and run tests/
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 tests/

nbval: setup                     ## re-execute every chapter and compare its stored outputs (nbval, strict)
	OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest $(NBVAL) -n $(WORKERS) --dist loadfile notebooks/

book: setup                      ## build the HTML book into _build/html; warnings are errors
	$(VENV)/bin/jupyter-book build . --path-output . -W -n --keep-going

book-check: book                 ## open each built chapter in headless Chromium; screenshots in _build/screenshots
	$(PY) tools/book_check.py

execute: setup                   ## re-execute notebooks in place (NB=notebooks/01_tokenization.ipynb for one)
	OMP_NUM_THREADS=1 $(PY) tools/nbtool.py execute $(or $(NB),notebooks/*.ipynb)

bench: setup                     ## run the benchmarks (ratios against tiktoken / transformers)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf _build .venv .venv-* .cache
