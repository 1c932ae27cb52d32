# oasis-keda developer targets. `make test` is the one CI runs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Runs a command with a Redis server reachable: the one named by OASIS_KEDA_REDIS_URL,
# or an embedded one started on a free port and stopped afterwards.
WITH_REDIS := $(PY) -m oasis_keda.runtime.embedded_redis --

.PHONY: all install redis-server format lint mypy layers proto test test-slow test-faults bench demo clean

all: lint mypy test

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) redis-server

# Debian's redis-server backs the embedded Redis (tests, `oasis-keda up`).
redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "installing Debian's redis-server"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
	  || { echo "could not install redis-server: install it, or set OASIS_KEDA_REDIS_URL"; exit 1; }; }

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

mypy: $(STAMP)
	$(VENV)/bin/mypy

# The import layers of docs/ARCHITECTURE.md (contracts in pyproject.toml).
layers: $(STAMP)
	$(VENV)/bin/lint-imports

# Regenerates the committed gRPC code and its type stubs from protos/.
proto: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m grpc_tools.protoc -Iprotos \
	  --python_out=scaler/proto --grpc_python_out=scaler/proto \
	  --mypy_out=scaler/proto --mypy_grpc_out=scaler/proto protos/externalscaler.proto
	sed -i 's/^import externalscaler_pb2/from . import externalscaler_pb2/' \
	  scaler/proto/externalscaler_pb2_grpc.py scaler/proto/externalscaler_pb2_grpc.pyi

test: install lint mypy layers
	$(WITH_REDIS) $(PY) -m pytest -q

test-slow: install
	$(WITH_REDIS) $(PY) -m pytest -q -m slow

# The fault suite (docs/RELIABILITY.md): each case starts its own Redis and processes.
test-faults: install
	$(WITH_REDIS) $(PY) -m pytest -q -m faults tests/faults

bench: install
	$(WITH_REDIS) $(PY) -m bench

demo: install
	$(VENV)/bin/oasis-keda demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
