# Timbr: `make run` installs and starts the whole stack; `make test` installs and runs the tests.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PB_DIR := services/common/pb
MODEL_TARGETS :=

# Area fragments (models-*, extra targets) add themselves here.
include $(wildcard mk/*.mk)

.PHONY: install apt apt-train venv protos models run test test-faults bench lint clean

install: apt venv protos models

# Install the Debian packages listed in a file (one a line, # comments), as root.
define apt_install
	@missing=$$(for p in $$(grep -v '^#' $(1)); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Missing Debian packages (run as root): $$missing"; exit 1; fi; fi
	@mkdir -p $(VENV) && touch $@
endef

apt: $(VENV)/.apt-stamp
$(VENV)/.apt-stamp: deploy/apt-packages.txt
	$(call apt_install,deploy/apt-packages.txt)

# Only the separation bench and training need these (MIDI, soundfonts, game sounds).
apt-train: $(VENV)/.apt-train-stamp
$(VENV)/.apt-train-stamp: training/apt-packages.txt
	$(call apt_install,training/apt-packages.txt)

venv: $(VENV)/.pip-stamp
$(VENV)/.pip-stamp: pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade "pip>=24"
	$(PIP) install -q -e '.[dev,enhance,diarize,separate,serving]'
	$(PIP) install -q -e ./clients/python   # the SDK and the `timbr` CLI
	touch $@

protos: $(PB_DIR)/__init__.py
$(PB_DIR)/__init__.py: $(wildcard protos/timbr/v1/*.proto) | venv
	rm -rf $(PB_DIR) && mkdir -p $(PB_DIR)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(PB_DIR) --pyi_out=$(PB_DIR) --grpc_python_out=$(PB_DIR) $(wildcard protos/timbr/v1/*.proto)
	touch $(PB_DIR)/timbr/__init__.py $(PB_DIR)/timbr/v1/__init__.py
	# protoc writes absolute imports ("from timbr.v1 import x_pb2"); make them package-relative.
	sed -i -E 's/^from timbr\.v1 import /from services.common.pb.timbr.v1 import /' $(PB_DIR)/timbr/v1/*.py
	touch $@

models: $(MODEL_TARGETS)

run: install
	$(PY) -m tools.devstack

# Two processes, a test file each at a time (pytest-xdist): most tests wait on services and
# processes, not on the CPU, so two halve the wall time on a 2-core machine.
test: install apt-train
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

# The fault tests alone (kill -9 of worker, jobs, billing and broker, on SQLite and PostgreSQL);
# `make test` runs them too.
test-faults: install
	$(PY) -m pytest -q tests/faults

bench: install apt-train heldout-data
	$(PY) -m bench

lint: venv
	$(VENV)/bin/ruff check services tests bench clients

clean:
	rm -rf $(PB_DIR) var build
