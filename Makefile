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

.PHONY: demo test test-fast lint typecheck setup clean

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

lint: .venv/.installed
	.venv/bin/ruff check pipeline flows tests
	.venv/bin/mypy

clean:
	rm -rf .venv $(TOOLS) demo-output
