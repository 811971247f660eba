# mmfuse: two commands.  `make demo` and `make test` both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,pretrained,retrieval,serve,export]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/mmfuse demo --out demo_out

# Headless Chromium for the web page's browser tests (tests/serve/test_page_browser.py), from
# apt when chromedriver is missing; when it cannot be installed those tests skip, the build goes on.
$(VENV)/.browser: | $(VENV)/.installed
	@command -v chromedriver >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  echo "installing chromium + chromium-driver (apt-get) for the browser tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { $$SUDO apt-get install -y -q chromium chromium-driver || \
	    { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium chromium-driver; }; } >/dev/null 2>&1 \
	  || echo "could not install chromium + chromium-driver: the browser tests will be skipped"; }
	@touch $@

test: install $(VENV)/.browser
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo_out
