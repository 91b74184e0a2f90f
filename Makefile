# `make report` and `make test` install what is missing into .venv, then run.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
CASES   ?= cases
JOBS    ?= 2

.PHONY: install test lint report clean mutants fuzz browser engines

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -rf *.egg-info   # the editable build's by-product: on sys.path from the checkout, its SOURCES.txt made pytest rewrite all of harness/
	touch $(STAMP)

install: $(STAMP)

## make test: every test of the harness and every shipped case in every engine (2 workers). The keras items run
## once on each of TensorFlow's CPU kernel paths (oneDNN on, oneDNN off), whatever this machine's default is,
## so that a verdict that holds on one CPU only shows here; results record the path that ran.
## Under -n the harness's plugin schedules by case (one worker computes a case's reference once), the big cases
## first, and sizes each worker's BLAS and framework threads to its share of the cores (harness/frontends/pytest_plugin.py).
## pytest's logging plugin is left out (no test reads logs; it attached a handler to each of torch's 42 silent
## loggers around every phase of every item; pyproject's addopts leaves it out of any pytest run here too), and
## hypothesis's from the case-only runs (only tests/ uses it). The pytest11 entry point is pytest_conv_harness.py,
## outside the package, so that pytest does not assertion-rewrite all of harness/ in every process.
## make lint: ruff and mypy over the package and tools/ (configured in pyproject.toml); `make test` runs it first
lint: $(STAMP)
	$(BIN)/ruff check harness tools pytest_conv_harness.py
	$(BIN)/mypy

test: $(STAMP) lint browser
	$(BIN)/python -m pytest -n $(JOBS) -p no:logging --engine oracle --engine torch
	$(BIN)/python -m pytest cases -n $(JOBS) -p no:hypothesispytest -p no:logging --engine keras --tf-onednn on
	$(BIN)/python -m pytest cases -n $(JOBS) -p no:hypothesispytest -p no:logging --engine keras --tf-onednn off
	$(MAKE) --no-print-directory models-small

## make models-small: the model suites, built by `python -m harness extract` (one case per Conv/Depthwise/Separable
## layer of a real model: its config, its weights and the activation that reaches it, in a git-ignored tensor file)
## for MobileNetV2, Xception, EfficientNetB0 and MobileNetV3Small, offline (weights=None, seed 0), at reduced input
## resolution (Xception needs >= 71) into build/models/NAME/; checks the parameter totals
## (tests/frontends/test_extract.py), then runs every case like `make test` runs cases/ (the keras items on both TF
## paths). `make test` ends with it.
## make models: the same at full resolution (224, Xception 299) into build/models-full/NAME/.
MODELS_SMALL ?= mobilenet_v2:32 xception:71 efficientnet_b0:32 mobilenet_v3_small:32
MODELS_FULL  ?= mobilenet_v2:224 xception:299 efficientnet_b0:224 mobilenet_v3_small:224
MODEL_PYTEST := $(BIN)/python -m pytest -n $(JOBS) -p no:hypothesispytest -p no:logging

# $(call model-suites,NAME:SIZE ...,FOLDER): extract each model into FOLDER/NAME, check the totals, run every engine
define model-suites
	rm -rf $(2)
	for m in $(1); do $(BIN)/python -m harness extract $${m%%:*} --out $(2)/$${m%%:*} --input-size $${m##*:} || exit 1; done
	HARNESS_MODEL_SUITES=$(2) $(BIN)/python -m pytest tests/frontends/test_extract.py -k published -p no:hypothesispytest -p no:logging
	$(MODEL_PYTEST) $(2) --engine oracle --engine torch
	$(MODEL_PYTEST) $(2) --engine keras --tf-onednn on
	$(MODEL_PYTEST) $(2) --engine keras --tf-onednn off
endef

.PHONY: models-small models
models-small: $(STAMP)
	$(call model-suites,$(MODELS_SMALL),build/models)

models: $(STAMP)
	$(call model-suites,$(MODELS_FULL),build/models-full)

## make report: run the cases (CASES=path...) in every engine and the files' `models:` entries (each model page under
## reports/models/), and write reports/ (BASELINE=old/results.json marks changes)
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
## make fuzz N=20000 SHARD=2/4: this job's quarter of the campaign (seeds no other shard uses), its summary in
## reports/fuzz-shard-2-of-4.json; make fuzz-merge (after copying every shard's summary there) prints the campaign's
N ?= 2000
FUZZ_SUMMARY ?= reports/fuzz-shard-$(subst /,-of-,$(SHARD)).json
fuzz: $(STAMP)
	$(BIN)/python -m harness fuzz --examples $(N)$(if $(SHARD), --shard $(SHARD) --out $(FUZZ_SUMMARY))

.PHONY: fuzz-merge
fuzz-merge: $(STAMP)
	$(BIN)/python -m harness fuzz --merge reports/fuzz-shard-*.json

## make bench: what the harness costs on this machine, each figure against its goal, with the command it came from
## (tools/bench.py; about 10 minutes, most of it the shipped suite run twice). BENCH="--no-suite" skips that,
## BENCH="--repeat 3" takes medians of alternated runs (the machine's other jobs make single runs noisy).
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python tools/bench.py $(BENCH)

## make scoreboard [FUZZ=200] [JOBS=2]: the cases (CASES=path...) and FUZZ configurations drawn by the fuzzer (the same on
## every run) in every installed engine (`make engines` first for the converters); writes reports/scoreboard.html
## and reports/scoreboard.json (docs/scoreboard.md)
FUZZ ?= 200
.PHONY: scoreboard
scoreboard: $(STAMP)
	HARNESS_ENGINES_DIR=$(abspath $(or $(ENGINES_DIR),.engines)) $(BIN)/python -m harness scoreboard $(CASES) --fuzz $(FUZZ) --jobs $(JOBS)

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
