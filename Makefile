# dockyard: `make serve` and `make test` install whatever is missing first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STUBS := src/dockyard/containerd/_gen/.stamp
HOST ?= unix:///run/dockyard/docker.sock
# Empty means dockyard's defaults (/var/lib/dockyard, /run/dockyard).
DATA_ROOT ?=
EXEC_ROOT ?=

.PHONY: setup system-packages serve test unit bench clean

setup: system-packages $(VENV)/.installed $(STUBS)

system-packages:
	@bash scripts/setup-system.sh

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

$(STUBS): $(VENV)/.installed scripts/gen-stubs.sh
	bash scripts/gen-stubs.sh

serve: setup
	@echo "export DOCKER_HOST=$(HOST)"
	@exec $(VENV)/bin/dockyard serve -H $(HOST) $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) \
		$(if $(EXEC_ROOT),--exec-root $(EXEC_ROOT))

test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider

unit: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) src/dockyard/containerd/_gen
