# Two entry points (README quick start): `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch 2.13.0 installs from this machine's disk in seconds; a bare `torch` would pull a
# ~5 GB CUDA build. Override on other machines, e.g. `make test TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: test demo bench install system-deps clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Debian's chromium drives the browser test of the Gradio app (Playwright with executable_path; no browser
# download). Installed with apt-get when missing and running as root.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium' (browser test)"; exit 1; fi; }

test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q -p no:cacheprovider

demo: $(VENV)/.installed
	$(VENV)/bin/avemotion demo

bench: $(VENV)/.installed
	$(PY) benchmarks/count_parameters.py
	$(PY) benchmarks/run_benchmarks.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
