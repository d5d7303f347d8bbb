# Set-up on a fresh machine (Python 3.11 with pip, root, apt-get): `make run`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= data/sim
ROWS   ?= 1000000
MODEL  ?= artifacts/model
# The dataset spec every layer takes its names from (README "Your own data").
DATASET ?= datasets/simulated.yaml

.PHONY: install system-deps run train serve rollback test lint secret-scan audit bench docs clean k8s-render \
	pipeline-compile pipeline-submit replay monitor dashboard fuzz soak bento bento-image \
	bento-requirements

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: 2.13.0 is a CPU wheel on these machines; a float would pull CUDA.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the integration tests start themselves (real Redis for the online store,
# headless Chromium for the Evidently dashboard test).
system-deps:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

$(DATA)/oracle.json: | $(STAMP)
	$(BIN)/aitm simulate --rows $(ROWS) --out $(DATA)

# The main job on DATASET: simulate (the default spec, if its table is absent), Feast sources,
# feast apply + materialize, the Kubeflow pipeline run locally (fetch, validate, train,
# evaluate + gate, package), then a summary.
run: install
	$(BIN)/python -m pipelines main --rows $(ROWS) --dataset $(DATASET) --config pipelines/run.yaml

# The core alone: train and evaluate on the simulated splits.
train: install $(DATA)/oracle.json
	$(BIN)/aitm train --data $(DATA) --out $(MODEL)
	$(BIN)/aitm evaluate --model $(MODEL) --data $(DATA)

# Serve the model `make run` promoted, with the Feast repo it materialized.
serve: install
	BENTOML_HOME=artifacts/bentoml AITM_FEAST_REPO=artifacts/pipeline/feature_repo \
	AITM_PREDICTION_LOG_DIR=artifacts/predictions AITM_DATASET=$(DATASET) \
	$(BIN)/bentoml serve serving.service:AITMService --host 127.0.0.1 --port $(or $(PORT),3000)

# The registry: the promoted model, its history, and a rollback to the model it replaced.
rollback: install
	BENTOML_HOME=artifacts/bentoml AITM_DATASET=$(DATASET) $(BIN)/python -m registry rollback
	BENTOML_HOME=artifacts/bentoml AITM_DATASET=$(DATASET) $(BIN)/python -m registry history

# Monitoring (after `make serve` in another shell): replay a clean then a drifted period of
# simulated traffic, monitor both windows into the Evidently workspace, serve the dashboard.
WORKSPACE ?= artifacts/evidently
replay: install
	$(BIN)/python -m monitoring replay --url http://127.0.0.1:$(or $(PORT),3000) --world $(DATA) \
		--clean-rows 20000 --drift-rows 20000 --labels-dir artifacts/labels --out artifacts/replay.json

monitor: install
	$(BIN)/python -m monitoring run --dataset $(DATASET) --log-dir artifacts/predictions --labels-dir artifacts/labels \
		--bentoml-home artifacts/bentoml --workspace $(WORKSPACE) --out artifacts/monitoring \
		$(or $(WINDOW),--window-hours 24)

dashboard: install
	$(BIN)/evidently ui --workspace $(WORKSPACE) --host 127.0.0.1 --port $(or $(UI_PORT),8000)

pipeline-compile: install
	AITM_IMAGE=$(or $(IMAGE),ghcr.io/example/aitm:0.1.0) $(BIN)/python -m pipelines compile \
		--out artifacts/aitm_training_pipeline.yaml

pipeline-submit: pipeline-compile
	$(BIN)/python -m pipelines submit --host $(KFP_HOST) \
		--package artifacts/aitm_training_pipeline.yaml $(PARAMS)

# ruff (with bandit's S rules) and the layers' import contracts ([tool.importlinter]).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Secrets scan of every tracked file against the committed baseline (offline, about 7 s).
# A finding fails; a false positive gets an inline `pragma: allowlist secret` comment or a
# reviewed `detect-secrets scan --baseline .secrets.baseline` update. The benchmark records are
# machine-written JSON whose hex strings are git commit ids (and JSON has no comments).
secret-scan: install
	git ls-files -z | xargs -0 $(BIN)/detect-secrets-hook --baseline .secrets.baseline \
		--exclude-files '^benchmarks/results/[a-z_0-9]+\.json$$'

# Known vulnerabilities in requirements.lock (pip-audit). Not part of `make test`: it needs
# pypi.org and its answer changes with the database, not with the code. It skips with the
# reason where the database cannot be reached (see RELIABILITY.md).
audit: install
	$(BIN)/python .ci/audit.py

test: install system-deps lint secret-scan
	$(BIN)/pytest

# Each benchmark writes its record to benchmarks/results/<name>.json; `make docs` renders them.
bench: install system-deps
	$(BIN)/python -m benchmarks.train_throughput
	$(BIN)/python -m benchmarks.simulate_memory
	$(BIN)/python -m benchmarks.features_bench
	$(BIN)/python -m benchmarks.monitoring_bench

# docs/benchmarks.md and the README's headline results, from benchmarks/results/*.json.
docs: install
	$(BIN)/python -m benchmarks.report

# Reliability against `make serve` in another shell (the CI forms are in tests/reliability).
# FUZZ: schemathesis, every check, all phases; SOAK: /rank + /predict at fixed rates, memory.
SERVE_URL = http://127.0.0.1:$(or $(PORT),3000)
fuzz: install
	$(BIN)/python -m tests.reliability.api_fuzz --url $(SERVE_URL) \
		--feast-repo artifacts/pipeline/feature_repo --examples 1000 --max-time 600

soak: install
	$(BIN)/python -m benchmarks.soak --url $(SERVE_URL) --feast-repo artifacts/pipeline/feature_repo \
		--pid $$(pgrep -of "bentoml serve serving.service:AITMService") --minutes $(or $(MINUTES),10) \
		--json artifacts/soak.json

# The bento (serving/bentofile.yaml; offline) of MODEL_TAG, in the store `make run` fills;
# `bento-image` containerizes the latest one (needs Docker); `bento-requirements` regenerates
# its pins from requirements.lock (docs/serving.md).
MODEL_TAG ?= aitm:promoted
bento: install
	BENTOML_HOME=artifacts/bentoml $(BIN)/python -c "from registry.store import \
	build_bento, serving_tag; print(build_bento('serving/bentofile.yaml', 'artifacts/bentoml', \
	serving_tag('$(MODEL_TAG)')))"

bento-image: install
	BENTOML_HOME=artifacts/bentoml $(BIN)/bentoml containerize aitm:latest \
		-t ghcr.io/example/aitm-serving:$(or $(TAG),dev) \
		--opt build-arg=BENTO_USER_UID=10001 --opt build-arg=BENTO_USER_GID=10001

bento-requirements: install
	$(BIN)/python docker/lock_subset.py 'aitm[serving]' > serving/requirements.txt

k8s-render:
	kubectl kustomize k8s/overlays/$(or $(ENV),local)

clean:
	rm -rf artifacts data .pytest_cache
