# `make report` and `make test` install what is missing into .venv, then run.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CASES   ?= cases
JOBS    ?= 2

.PHONY: install test report clean mutants fuzz browser engines

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## make test: every test of the harness and every shipped case in every engine (2 workers). The keras items run
## once on each of TensorFlow's CPU kernel paths (oneDNN on, oneDNN off), whatever this machine's default is,
## so that a verdict that holds on one CPU only shows here; results record the path that ran.
test: $(STAMP) browser
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup --engine oracle --engine torch
	$(BIN)/python -m pytest cases -n $(JOBS) --dist loadgroup --engine keras --tf-onednn on
	$(BIN)/python -m pytest cases -n $(JOBS) --dist loadgroup --engine keras --tf-onednn off

## make report: run the cases (CASES=path...) in every engine and write reports/ (BASELINE=old/results.json marks changes)
report: $(STAMP)
	$(BIN)/python -m harness report $(CASES) $(if $(BASELINE),--baseline $(BASELINE))

## make browser: Debian's chromium for the report's browser test (about 40 s of apt-get); where it cannot be
## installed (no apt-get, no root or sudo) the browser test skips and says why
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  { command -v apt-get >/dev/null 2>&1 && $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium could not be installed: the report's browser test will skip"; }

clean:
	rm -rf $(VENV) reports/*.html reports/*.json reports/*.png

## make mutants: run every deliberately broken port over the shipped cases; print the mutation score
mutants: $(STAMP)
	$(BIN)/python -m harness mutants $(CASES)

## make fuzz N=20000: property-based configurations in every engine; false alarms expected zero
N ?= 2000
fuzz: $(STAMP)
	$(BIN)/python -m harness fuzz --examples $(N)

## make scoreboard [FUZZ=200]: the cases (CASES=path...) and FUZZ configurations drawn by the fuzzer (the same on
## every run) in every installed engine (`make engines` first for the converters); writes reports/scoreboard.html
## and reports/scoreboard.json (docs/scoreboard.md)
FUZZ ?= 200
.PHONY: scoreboard
scoreboard: $(STAMP)
	HARNESS_ENGINES_DIR=$(abspath $(or $(ENGINES_DIR),.engines)) $(BIN)/python -m harness scoreboard $(CASES) --fuzz $(FUZZ)

## make engine-NAME: the venv .engines/NAME of an engine that runs apart (Engine.isolation venv="NAME"), with
## engines/NAME.txt installed, plus numpy (the worker's protocol) and ml_dtypes (bfloat16 arrays cross as it);
## make engines: every engines/*.txt. `make test` needs none of them: an engine whose venv is missing skips.
ENGINES_DIR   ?= $(or $(HARNESS_ENGINES_DIR),.engines)
ENGINE_NAMES  := $(patsubst engines/%.txt,%,$(wildcard engines/*.txt))

engines: $(addprefix engine-,$(ENGINE_NAMES))

engine-%: $(ENGINES_DIR)/%/.installed
	@echo "engine $*: $(ENGINES_DIR)/$* is ready"

# The stamp is no intermediate file: make must keep it, or every `make engine-NAME` would reinstall.
.PRECIOUS: $(ENGINES_DIR)/%/.installed
$(ENGINES_DIR)/%/.installed: engines/%.txt
	test -x $(ENGINES_DIR)/$*/bin/python || $(PY) -m venv $(ENGINES_DIR)/$*
	$(ENGINES_DIR)/$*/bin/pip install --quiet --disable-pip-version-check numpy ml_dtypes -r engines/$*.txt
	touch $@
