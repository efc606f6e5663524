# Two commands on a fresh machine:
#   make demo   sets up the environment and runs `ctdna demo`
#   make test   sets up the environment and the real test services, then runs every test
# The environment is .venv, installed exactly from uv.lock (uv itself is pinned and
# bootstrapped into .venv-tools, so nothing is installed into the system Python).

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy

.PHONY: demo test test-fast lint lint-ci typecheck setup clean bench bench-ci

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.venv/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --compile-bytecode --extra dev --python $(PYTHON)
	$(UV) run --no-sync python -m compileall -q pipeline flows
	touch $@

setup: .venv/.installed

demo: .venv/.installed
	.venv/bin/ctdna demo

test: .venv/.installed
	eval "$$(bash scripts/test-services.sh)" && \
	CTDNA_REQUIRE_PG=1 CTDNA_REQUIRE_BROWSER=1 .venv/bin/python -m pytest -q -p no:cacheprovider

test-fast: .venv/.installed
	.venv/bin/python -m pytest -q -m "not flow and not postgres and not browser and not benchmark"

# Benchmarks of issue #11 (docs/performance.md); skipped by every other target.
# bench: full size (CTDNA_BENCH_PATIENTS=10000 for the issue's cohort); bench-ci (run by
# .ci/run after the tests): scaled down, fails on a 3x regression of a workload's CPU time
# relative to a reference workload timed in the same process (tests/benchmarks/baseline.json).
bench: .venv/.installed
	.venv/bin/python -m compileall -q pipeline flows
	.venv/bin/python -m pytest -q -s -p no:cacheprovider --benchmark-enable \
		tests/benchmarks/test_benchmarks.py

bench-ci: .venv/.installed
	.venv/bin/python -m pytest -q -s -p no:cacheprovider --benchmark-enable \
		tests/benchmarks/test_regression.py

lint: .venv/.installed
	.venv/bin/ruff check pipeline flows tests scripts
	.venv/bin/mypy

# CI gate run by .ci/run before the tests: ruff (style, bugs, imports) including the
# mccabe complexity limit (C901, max-complexity in pyproject.toml), then mypy (0 errors,
# pandas-stubs of the locked pandas series; config in pyproject.toml, #12 item 6).
lint-ci: .venv/.installed
	.venv/bin/ruff --version
	.venv/bin/ruff check pipeline flows tests scripts
	.venv/bin/ruff check pipeline flows tests --select C901 --statistics
	.venv/bin/mypy --version
	.venv/bin/mypy

clean:
	rm -rf .venv $(TOOLS) demo-output
