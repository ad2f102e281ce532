# Set-up and the two everyday jobs. `make bench` and `make test` each set up
# everything first (virtual environment, pinned packages, Debian libraries).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sdperf-installed
SYSTEM_PACKAGES := libjemalloc2 libtcmalloc-minimal4 numactl

.PHONY: bench test setup system-packages lock clean

## The suite on this host with the built-in model, sized for a first look (one worker and
## five timed rounds a case: about five minutes on 2 cores); prints the results table, where
## the run was saved and what to run next.
BENCH_SIZE ?= --sdperf-workers=1 --sdperf-rounds=5
bench: setup
	$(BIN)/python -m pytest perf --benchmark-autosave $(BENCH_SIZE)

## The suite's own tests, with the 15 slowest named (the time budget is 15 minutes here).
test: setup
	$(BIN)/python -m pytest tests --durations=15

setup: $(STAMP)

# Re-run when the dependency declarations change.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	$(BIN)/python -m pip check
	@$(MAKE) --no-print-directory system-packages
	touch $@

## Debian libraries the CPU recipes use (allocators, core pinning); optional.
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then echo "sdperf: Debian packages present: $(SYSTEM_PACKAGES)"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "sdperf: not installing$$missing: no apt-get on this system; the recipes that need them will be skipped"; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null) \
		&& echo "sdperf: installed$$missing" \
		|| echo "sdperf: could not install$$missing (apt-get failed); the recipes that need them will be skipped"; \
	elif sudo -n true 2>/dev/null; then \
		(sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing >/dev/null) \
		&& echo "sdperf: installed$$missing" \
		|| echo "sdperf: could not install$$missing (apt-get failed); the recipes that need them will be skipped"; \
	else \
		echo "sdperf: not installing$$missing: needs root (run: sudo apt-get install$$missing); the recipes that need them will be skipped"; \
	fi

## Re-pin constraints.txt from a fresh resolve of everything, extras included.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet torch==2.13.0 -e '.[dev,openvino,cuda]'
	.venv-lock/bin/python -m pip check
	{ sed -n '/^#/p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable | sed 's/^torch==\([0-9.]*\)+cpu/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-lock

clean:
	rm -rf $(VENV) .benchmarks .pytest_cache
