# The two commands of the README:
#   make demo   set up (runtime) and run the simulated over-the-air demo on the shipped models
#   make test   set up (dev) and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
export QT_QPA_PLATFORM ?= offscreen

.PHONY: demo test test-fast setup setup-dev lint clean

setup:
	@scripts/setup.sh runtime

setup-dev:
	@scripts/setup.sh dev

demo: setup
	@$(VENV)/bin/semjscc demo

test: setup-dev
	@scripts/test.sh

# the quick loop while editing: everything not marked slow (flowgraph runs, trainings and the GUI are)
test-fast: setup-dev
	@scripts/test.sh -m "not slow" -q

lint: setup-dev
	@$(VENV)/bin/ruff check gr-semjscc/python tests scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
