# `make report` and `make test` install what is missing into .venv, then run.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CASES   ?= cases
JOBS    ?= 2

.PHONY: install test report clean mutants fuzz

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## make test: every test of the harness and every shipped case in every engine (2 workers)
test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS)

## make report: run the cases (CASES=path...) in every engine and write reports/
report: $(STAMP)
	$(BIN)/python -m harness report $(CASES)

clean:
	rm -rf $(VENV) reports/*.html reports/*.json

## make mutants: run every deliberately broken port over the shipped cases; print the mutation score
mutants: $(STAMP)
	$(BIN)/python -m harness mutants $(CASES)

## make fuzz N=20000: property-based configurations in every engine; false alarms expected zero
N ?= 2000
fuzz: $(STAMP)
	$(BIN)/python -m harness fuzz --examples $(N)
