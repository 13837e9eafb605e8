# Two commands do all set-up on a fresh machine:
#   make run    create .venv, install stagectl, run the demo stage
#   make test   create .venv, install stagectl with its test extras, run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAGE  ?= stages/demo.yaml
ARGS   ?=

.PHONY: run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/stagectl run $(STAGE) $(ARGS)

# GLFW window tests run under Xvfb: install it where it is missing (Debian's package, as root); elsewhere
# those tests say why they skip.
$(VENV)/.xvfb: | $(BIN)/python
	@command -v xvfb-run >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing xvfb (for the GLFW window tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth >/dev/null; \
	  else echo "note: xvfb-run is missing: the GLFW window tests will skip (apt-get install xvfb)"; fi; }
	touch $@

# The web console's browser test drives Debian's chromium (Playwright's own browser download is not used):
# install it where it is missing (as root); elsewhere that test says why it skips.
$(VENV)/.chromium: | $(BIN)/python
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (for the web console browser test)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: /usr/bin/chromium is missing: the web console browser test will skip (apt-get install chromium)"; fi; }
	touch $@

test: $(VENV)/.installed-test $(VENV)/.xvfb $(VENV)/.chromium
	$(BIN)/python -m pytest $(ARGS)

bench: $(VENV)/.installed-run
	$(BIN)/python -m bench all

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
