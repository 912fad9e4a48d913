# airflow-stack: `make help` lists the targets. Settings below can be overridden on the
# command line or in the environment, e.g. `make push REGISTRY=registry.example.com/data`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

AIRFLOW_IMAGE     ?= airflow-stack:latest
PYTHON_BASE_IMAGE ?= python:3.13-slim-trixie
POSTGRES_IMAGE    ?= postgres:17
REDIS_IMAGE       ?= redis:8
S3_LOCAL_IMAGE    ?= airflow-stack-s3-local:latest
ARTIFACTS_IMAGE   ?= airflow-stack-artifacts:latest
# Extra CA bundle for TLS-intercepting proxies, handed to the build as a secret (never in a
# layer). Defaults to the host's trust store where it exists; set empty to pass none.
CA_BUNDLE         ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
REGISTRY          ?=
UP_TIMEOUT        ?= 300
UV_VERSION        := 0.13.9
# End-to-end modules; each runs alone too (`pytest tests/e2e/test_monitor.py`). This order shares
# one stack with the fewest restarts: the S3 modules switch it to S3 logs, then to DAG releases.
E2E_TESTS         := tests/e2e/test_stack.py tests/e2e/test_secrets_contract.py \
                     tests/e2e/test_bootstrap.py tests/e2e/test_faults.py tests/e2e/test_s3_logs.py tests/e2e/test_dag_sync.py \
                     tests/e2e/test_monitor.py tests/e2e/test_ecs_worker.py
# The compose command and env file the stack targets use (the tests point them elsewhere).
COMPOSE           ?= docker compose
ENV_FILE          ?= .env

VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION := $(shell git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
CREATED  := $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)

comma := ,
export AIRFLOW_IMAGE POSTGRES_IMAGE REDIS_IMAGE PYTHON_BASE_IMAGE S3_LOCAL_IMAGE ARTIFACTS_IMAGE
HOST_PY := PYTHONPATH=$(CURDIR)/src python3
UV      := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.venv-tools/bin/uv)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: secrets
secrets: ## write .env once with generated secrets (never overwrites it)
	@$(HOST_PY) -m airflow_stack.host.envfile --env-file $(ENV_FILE)

.PHONY: fernet-key
fernet-key: ## print a new Fernet key
	@$(HOST_PY) -m airflow_stack.host.envfile fernet-key

.PHONY: rotate-fernet-key
rotate-fernet-key: ## new fernet key: add it in front, re-encrypt, restart, drop the old key
	@$(HOST_PY) -m airflow_stack.host.envfile fernet-add --env-file $(ENV_FILE)
	$(COMPOSE) run --rm --no-deps db-migrate rotate-fernet-key record
	$(COMPOSE) up -d
	@$(HOST_PY) -m airflow_stack.host.stackwait --timeout $(UP_TIMEOUT) -- $(COMPOSE)
	$(COMPOSE) run --rm --no-deps db-migrate rotate-fernet-key reencrypt
	@$(HOST_PY) -m airflow_stack.host.envfile fernet-drop --env-file $(ENV_FILE)
	$(COMPOSE) up -d
	@$(HOST_PY) -m airflow_stack.host.stackwait --timeout $(UP_TIMEOUT) -- $(COMPOSE)
	@echo "rotate-fernet-key: done; connections and variables are encrypted with the new key only"

.PHONY: base-images
base-images: ## build stand-in base images from Debian packages where none can be pulled
	@bash scripts/base-images.sh

.PHONY: build
build: base-images ## build the Airflow image (AIRFLOW_IMAGE) and the local S3 and artifact-server images
	docker build $(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE)) \
		--build-arg PYTHON_BASE_IMAGE=$(PYTHON_BASE_IMAGE) \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg CREATED=$(CREATED) \
		-t $(AIRFLOW_IMAGE) .
	docker build $(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE)) --quiet \
		--build-arg PYTHON_BASE_IMAGE=$(PYTHON_BASE_IMAGE) -t $(S3_LOCAL_IMAGE) dev/moto >/dev/null
	docker build --quiet -t $(ARTIFACTS_IMAGE) dev/artifacts >/dev/null

.PHONY: push
push: ## tag and push the image: make push REGISTRY=host/path [VERSION=tag]
	@test -n "$(REGISTRY)" || { echo "error: REGISTRY is empty; fix: make push REGISTRY=registry.example.com/team" >&2; exit 1; }
	docker tag $(AIRFLOW_IMAGE) $(REGISTRY)/airflow-stack:$(VERSION)
	docker push $(REGISTRY)/airflow-stack:$(VERSION)

.PHONY: up
up: secrets build ## start the stack and wait until every service is healthy
	$(COMPOSE) up -d --remove-orphans
	@$(HOST_PY) -m airflow_stack.host.stackwait --timeout $(UP_TIMEOUT) -- $(COMPOSE)
	@. $(abspath $(ENV_FILE)); echo; \
	echo "Airflow UI  http://localhost:$${AIRFLOW_UI_PORT:-8080}  user $${AIRFLOW_ADMIN_USERNAME:-admin}, password: AIRFLOW_ADMIN_PASSWORD in .env"; \
	echo "Flower      http://localhost:$${FLOWER_PORT:-5555}  user $${FLOWER_USERNAME:-flower}, password: FLOWER_PASSWORD in .env"

.PHONY: down
down: ## stop the stack (volumes kept; `docker compose down -v` deletes them)
	$(COMPOSE) down

.PHONY: ps
ps: ## show the services and their health
	$(COMPOSE) ps --all

.PHONY: logs
logs: ## follow the logs of every service (SERVICE=name for one)
	$(COMPOSE) logs -f --tail 100 $(SERVICE)

.PHONY: dag-artifact
dag-artifact: ## publish DAGS (default ./dags) to the local artifact server: make dag-artifact DAG_VERSION=1.0.0
	@test -n "$(DAG_VERSION)" || { echo "error: DAG_VERSION is empty; fix: make dag-artifact DAG_VERSION=1.0.0 [DAGS=./dags]" >&2; exit 1; }
	@set -a; if [ -f "$(ENV_FILE)" ]; then . "$(abspath $(ENV_FILE))"; fi; \
	$(HOST_PY) -m airflow_stack.host.dagpublish "$(or $(DAGS),./dags)" "$(DAG_VERSION)" --to "$${AIRFLOW_STACK_ARTIFACTS_DIR:-./artifacts}"

.PHONY: dag-sync-status
dag-sync-status: ## what dag-sync last did: current release, last check, last error
	$(COMPOSE) exec dag-sync airflow-stack dag-sync status

.PHONY: airflow
airflow: ## run an Airflow CLI command in the scheduler: make airflow ARGS="dags list"
	$(COMPOSE) exec scheduler airflow-stack $(ARGS)

$(CURDIR)/.venv-tools/bin/uv:
	python3 -m venv $(CURDIR)/.venv-tools
	$(CURDIR)/.venv-tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.PHONY: lock
lock: $(UV) ## re-resolve uv.lock from pyproject.toml
	$(UV) lock

.PHONY: lint
lint: $(UV) ## ruff: lint and check the formatting of the package, tests and benchmarks
	$(UV) run --frozen --group test ruff check src tests bench dev
	$(UV) run --frozen --group test ruff format --check src tests bench dev

.PHONY: format
format: $(UV) ## ruff: fix what can be fixed and format the code
	$(UV) run --frozen --group test ruff check --fix src tests bench dev
	$(UV) run --frozen --group test ruff format src tests bench dev

.PHONY: docs
docs: ## regenerate docs/configuration.md from the settings registry
	@$(HOST_PY) -m airflow_stack.core.settings > docs/configuration.md

.PHONY: settings
settings: ## every setting with its value in the running stack's api-server (secrets masked)
	$(COMPOSE) exec api-server airflow-stack settings

.PHONY: test-unit
test-unit: lint ## lint, then the unit tests of the package (no Docker)
	$(UV) run --frozen --group test pytest tests/unit

.PHONY: test
test: lint build ## lint, unit tests, then the end-to-end suite on the real compose file
	$(UV) run --frozen --group test pytest tests/unit $(E2E_TESTS)
