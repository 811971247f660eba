# mmfuse: two commands.  `make demo` and `make test` both create .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test install clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,pretrained,retrieval,serve,export,summarize,search,distributed]'
	touch $@

install: $(VENV)/.installed

demo: install $(VENV)/.speech
	$(VENV)/bin/mmfuse demo --out demo_out

# Debian packages, from apt when their program is missing: espeak-ng speaks the demo's and the
# tests' tone dataset (mmfuse.datasets.tone); headless Chromium + chromedriver run the web page's
# browser tests (tests/serve/test_page_browser.py). When apt cannot install them those parts
# skip (and say so); the build goes on.
APT_GET = SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); export DEBIAN_FRONTEND=noninteractive; \
	{ $$SUDO apt-get install -y -q $(1) || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $(1); }; } \
	>/dev/null 2>&1 || echo "could not install $(1) (apt-get): $(2) will be skipped"

$(VENV)/.speech: | $(VENV)/.installed
	@command -v espeak-ng >/dev/null 2>&1 || { echo "installing espeak-ng (apt-get)"; \
	  $(call APT_GET,espeak-ng,the spoken tone data); }
	@touch $@

$(VENV)/.browser: | $(VENV)/.installed
	@command -v chromedriver >/dev/null 2>&1 || { echo "installing chromium + chromium-driver (apt-get)"; \
	  $(call APT_GET,chromium chromium-driver,the browser tests); }
	@touch $@

# One pytest-xdist worker per core (TEST_WORKERS=0: one process), each on one thread
# (tests/conftest.py); idle workers take tests from busy ones.
TEST_WORKERS ?= auto
test: install $(VENV)/.speech $(VENV)/.browser
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo_out
