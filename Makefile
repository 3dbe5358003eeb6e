# Two commands do all the set-up: `make demo` and `make test`. Both are idempotent:
# the venv is rebuilt only when requirements.txt or pyproject.toml change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test system clean
install: $(STAMP) system

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

system:
	@./scripts/system-deps.sh

demo: install
	$(BIN)/sketchshop demo

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) var build *.egg-info
