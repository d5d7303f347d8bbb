# Set-up on a fresh machine (Python 3.11 with pip, root, apt-get): `make run`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= data/sim
ROWS   ?= 1000000
MODEL  ?= artifacts/model

.PHONY: install system-deps run test lint bench clean k8s-render

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: 2.13.0 is a CPU wheel on these machines; a float would pull CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the integration tests start themselves (real Redis for the online store).
system-deps:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)

$(DATA)/oracle.json: | $(STAMP)
	$(BIN)/aitm simulate --rows $(ROWS) --out $(DATA)

run: install $(DATA)/oracle.json
	$(BIN)/aitm train --data $(DATA) --out $(MODEL)
	$(BIN)/aitm evaluate --model $(MODEL) --data $(DATA)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install system-deps lint
	$(BIN)/pytest

bench: install
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/simulate_memory.py

k8s-render:
	kubectl kustomize k8s/overlays/$(or $(ENV),local)

clean:
	rm -rf artifacts data .pytest_cache
