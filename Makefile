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
# The CPU the image is built for (docker's --platform): linux/amd64 for Fargate's X86_64, linux/arm64
# for ARM64 (Graviton). Empty: the host's own. Several ("linux/amd64 linux/arm64") build one image
# each, tagged $(AIRFLOW_IMAGE)-amd64 and -arm64. ARCH is what `make push` pushes: one architecture,
# or several under one tag (a manifest list), e.g. ARCH="amd64 arm64".
PLATFORM          ?=
ARCH              ?= amd64
UP_TIMEOUT        ?= 300
# Your requirements.txt and packages.txt: this folder's (the repository root) unless
# USER_DEPS_DIR names another folder holding both.
USER_DEPS_DIR     ?=
# The image for `make dags-test` (production image + pytest; never pushed).
DAG_TESTS_IMAGE   ?= airflow-stack-dag-tests:latest
# The DAG repository's tests for `make dags-test`.
DAG_TESTS         ?= ./dag-tests
# The Airflow version, pinned once in pyproject.toml, as the lock resolved it.
AIRFLOW_VERSION   := $(shell sed -n '/^name = "apache-airflow"$$/{n;s/^version = "\(.*\)"$$/\1/p;q;}' uv.lock)
UV_VERSION        := 0.13.9
# End-to-end modules; each runs alone too (`pytest tests/e2e/test_monitor.py`). This order shares
# one stack with the fewest restarts: the S3 modules switch it to S3 logs, then to DAG releases
# (DAG authoring's folder tests come before that).
E2E_TESTS         := tests/e2e/test_stack.py tests/e2e/test_secrets_contract.py \
                     tests/e2e/test_bootstrap.py tests/e2e/test_dag_authoring.py tests/e2e/test_dag_cache.py tests/e2e/test_s3_logs.py tests/e2e/test_dag_sync.py \
                     tests/e2e/test_monitor.py tests/e2e/test_ecs_worker.py tests/e2e/test_database_tls.py tests/e2e/test_image_push.py \
                     tests/e2e/test_shared_heap.py
# The fault injections, on a stack of their own: `make test-faults` (CI runs it after `make test`).
FAULT_TESTS       := tests/e2e/test_faults.py
# The compose command and env file the stack targets use (the tests point them elsewhere).
COMPOSE           ?= docker compose
ENV_FILE          ?= .env

VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION := $(shell git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
CREATED  := $(shell git log -1 --format=%cI 2>/dev/null || echo 1970-01-01T00:00:00Z)

comma := ,
# .env's variables in a recipe's shell (AIRFLOW_DAGS_DIR, AIRFLOW_ENV_FILE...), when it exists.
LOAD_ENV = set -a; if [ -f "$(ENV_FILE)" ]; then . "$(abspath $(ENV_FILE))"; fi; set +a
# The DAG folder: DAGS=..., else AIRFLOW_DAGS_DIR from .env, else ./dags.
DAGS_DIR = $${DAGS:-$${AIRFLOW_DAGS_DIR:-./dags}}
# In a recipe: refuse a missing DAG folder, else set the bash array dag_mounts to mount it and the
# plugins read-only where Airflow reads them.
DAG_MOUNTS = $(LOAD_ENV); dags="$(DAGS_DIR)"; \
	test -d "$$dags" || { echo "error: DAG folder $$dags does not exist; fix: make $@ DAGS=path/to/dags" >&2; exit 1; }; \
	dag_mounts=(-v "$$(realpath "$$dags")":/opt/airflow/dags:ro -v "$$(realpath "$${AIRFLOW_PLUGINS_DIR:-./plugins}")":/opt/airflow/plugins:ro)
# The Airflow image's build options shared by `make build` and `make dags-test`.
IMAGE_BUILD_ARGS = $(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE)) \
	$(if $(USER_DEPS_DIR),--build-context user-deps=$(USER_DEPS_DIR)) --build-arg PYTHON_BASE_IMAGE=$(PYTHON_BASE_IMAGE)
# usage: $(call build-airflow,PLATFORM or empty,TAG): the Airflow image for one platform.
build-airflow = docker build $(if $(1),--platform $(1)) $(IMAGE_BUILD_ARGS) --build-arg AIRFLOW_VERSION=$(AIRFLOW_VERSION) \
	--build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) --build-arg CREATED=$(CREATED) -t $(2) .
export DAGS
export AIRFLOW_IMAGE POSTGRES_IMAGE REDIS_IMAGE PYTHON_BASE_IMAGE S3_LOCAL_IMAGE ARTIFACTS_IMAGE
HOST_PY := PYTHONPATH=$(CURDIR)/src python3
UV      := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.venv-tools/bin/uv)

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: secrets
secrets: ## write .env once with generated secrets, and config/airflow.env for your Airflow options (never overwritten)
	@$(HOST_PY) -m airflow_stack.host.envfile --env-file $(ENV_FILE)
	@$(LOAD_ENV); $(HOST_PY) -m airflow_stack.host.overrides template --file "$${AIRFLOW_ENV_FILE:-config/airflow.env}"

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
build: base-images ## build the Airflow image with requirements.txt and packages.txt, and the local S3 and artifact images
	@for f in requirements.txt packages.txt; do test -f "$(or $(USER_DEPS_DIR),.)/$$f" || { \
		echo "error: $(or $(USER_DEPS_DIR),.)/$$f is missing; fix: restore it (git checkout -- $$f) or create it empty" >&2; exit 1; }; done
	$(if $(word 2,$(PLATFORM)),$(foreach p,$(PLATFORM),$(call build-airflow,$(p),$(AIRFLOW_IMAGE)-$(notdir $(p))) && ) true,$(call build-airflow,$(PLATFORM),$(AIRFLOW_IMAGE)))
	docker build $(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE)) --quiet \
		--build-arg PYTHON_BASE_IMAGE=$(PYTHON_BASE_IMAGE) -t $(S3_LOCAL_IMAGE) dev/moto >/dev/null
	docker build --quiet -t $(ARTIFACTS_IMAGE) dev/artifacts >/dev/null

.PHONY: push
push: ## tag and push the image: make push REGISTRY=host/path [VERSION=tag] [ARCH=amd64|arm64|"amd64 arm64"]
	@$(HOST_PY) -m airflow_stack.host.imagepush push --image $(AIRFLOW_IMAGE) --registry "$(REGISTRY)" --version $(VERSION) $(ARCH)

.PHONY: up
up: secrets build airflow-options ## start the stack and wait until every service is healthy
	$(COMPOSE) up -d --remove-orphans
	@$(HOST_PY) -m airflow_stack.host.stackwait --timeout $(UP_TIMEOUT) -- $(COMPOSE)
	@. $(abspath $(ENV_FILE)); echo; \
	echo "Airflow UI  http://localhost:$${AIRFLOW_UI_PORT:-8080}  user $${AIRFLOW_ADMIN_USERNAME:-admin}, password: AIRFLOW_ADMIN_PASSWORD in .env"; \
	echo "Flower      http://localhost:$${FLOWER_PORT:-5555}  user $${FLOWER_USERNAME:-flower}, password: FLOWER_PASSWORD in .env"

.PHONY: airflow-options
airflow-options: ## check that config/airflow.env (your Airflow options) reaches every Airflow container
	@$(LOAD_ENV); $(HOST_PY) -m airflow_stack.host.overrides --file "$${AIRFLOW_ENV_FILE:-config/airflow.env}" -- $(COMPOSE)

.PHONY: down
down: ## stop the stack (volumes kept; make reset deletes them)
	$(COMPOSE) down

.PHONY: restart
restart: airflow-options ## recreate SERVICE (default: every service) with the current configuration, then wait
	$(COMPOSE) up -d --force-recreate $(if $(SERVICE),--no-deps $(SERVICE))
	@$(HOST_PY) -m airflow_stack.host.stackwait --timeout $(UP_TIMEOUT) -- $(COMPOSE)

.PHONY: reset
reset: ## delete the stack's containers and volumes (metadata DB, queue, DAG releases) after asking; CONFIRM=yes skips the question
	@if [ "$(CONFIRM)" != yes ]; then \
		if [ ! -t 0 ]; then echo "error: make reset deletes the metadata database; fix: make reset CONFIRM=yes" >&2; exit 1; fi; \
		read -r -p "Delete the metadata database, the queue and the DAG releases of this stack? Type yes: " answer; \
		[ "$$answer" = yes ] || { echo "reset: cancelled; nothing was deleted"; exit 1; }; \
	fi
	$(COMPOSE) --profile cli --profile dag-sync --profile s3 down -v --remove-orphans
	@echo "reset: volumes deleted; .env, config/ and the logs folder are kept. make up starts afresh."

.PHONY: ps
ps: ## show the services and their health
	$(COMPOSE) ps --all

.PHONY: logs
logs: ## follow the logs of every service (SERVICE=name for one)
	$(COMPOSE) logs -f --tail 100 $(SERVICE)

.PHONY: airflow
airflow: ## an Airflow CLI command in a one-off container, stack up or down: make airflow ARGS="dags list"
	$(COMPOSE) --profile cli run --rm airflow-cli $(ARGS)

.PHONY: shell
shell: ## a shell in SERVICE (e.g. SERVICE=worker), or in a one-off Airflow container
	$(if $(SERVICE),$(COMPOSE) exec $(SERVICE) bash,$(COMPOSE) --profile cli run --rm --entrypoint bash airflow-cli)

.PHONY: dags-check
dags-check: build ## import every DAG (DAGS, default AIRFLOW_DAGS_DIR or ./dags) in the image; no stack needed
	@$(DAG_MOUNTS); docker run --rm "$${dag_mounts[@]}" $(AIRFLOW_IMAGE) dags-check

.PHONY: dags-test
dags-test: build ## run your DAG tests (DAG_TESTS, default ./dag-tests) with pytest in the image, with your requirements
	@test -d "$(DAG_TESTS)" || { echo "error: DAG tests folder $(DAG_TESTS) does not exist; fix: make dags-test DAG_TESTS=path/to/tests" >&2; exit 1; }
	docker build --quiet $(IMAGE_BUILD_ARGS) --target dag-tests -t $(DAG_TESTS_IMAGE) . >/dev/null
	@$(DAG_MOUNTS); docker run --rm "$${dag_mounts[@]}" -v "$$(realpath "$(DAG_TESTS)")":/opt/airflow/dag-tests:ro \
		$(DAG_TESTS_IMAGE) dags-test /opt/airflow/dag-tests $(ARGS)

.PHONY: dag-artifact
dag-artifact: ## check, then publish DAGS to the local artifact server: make dag-artifact DAG_VERSION=1.0.0
	@test -n "$(DAG_VERSION)" || { echo "error: DAG_VERSION is empty; fix: make dag-artifact DAG_VERSION=1.0.0 [DAGS=./dags]" >&2; exit 1; }
	@$(MAKE) --no-print-directory dags-check
	@$(LOAD_ENV); $(HOST_PY) -m airflow_stack.host.dagpublish "$(DAGS_DIR)" "$(DAG_VERSION)" --to "$${AIRFLOW_STACK_ARTIFACTS_DIR:-./artifacts}"

.PHONY: bootstrap-export
bootstrap-export: ## write the stack's connections, variables and pools to FILE (default backups/bootstrap-DATE.yaml); INCLUDE_SECRETS=1 for clear text
	@file="$(or $(FILE),backups/bootstrap-$(shell date +%Y%m%d-%H%M%S).yaml)"; mkdir -p "$$(dirname "$$file")"; \
	umask 077; $(COMPOSE) --profile cli run --rm -T airflow-cli bootstrap export $(if $(INCLUDE_SECRETS),--include-secrets) > "$$file.partial" \
		&& mv "$$file.partial" "$$file" && echo "bootstrap-export: wrote $$file" || { rm -f "$$file.partial"; exit 1; }

.PHONY: db-backup
db-backup: ## pg_dump the metadata database into backups/ (git-ignored)
	@$(HOST_PY) -m airflow_stack.host.database backup --dir backups -- $(COMPOSE)

.PHONY: db-restore
db-restore: ## restore FILE (from make db-backup) after asking, then start the stack; CONFIRM=yes skips the question
	@test -n "$(FILE)" || { echo "error: FILE is empty; fix: make db-restore FILE=backups/airflow-YYYYMMDD-HHMMSS.dump" >&2; exit 1; }
	@$(HOST_PY) -m airflow_stack.host.database restore "$(FILE)" $(if $(filter yes,$(CONFIRM)),--yes) -- $(COMPOSE)
	$(COMPOSE) up -d
	@$(HOST_PY) -m airflow_stack.host.stackwait --timeout $(UP_TIMEOUT) -- $(COMPOSE)

.PHONY: upgrade-check
upgrade-check: build ## this checkout's image: its migration and dags-check against a copy of the live database
	@$(HOST_PY) -m airflow_stack.host.database upgrade-check -- $(COMPOSE)

.PHONY: dag-sync-status
dag-sync-status: ## what dag-sync last did: current release, last check, last error
	$(COMPOSE) exec dag-sync airflow-stack dag-sync status

$(CURDIR)/.venv-tools/bin/uv:
	python3 -m venv $(CURDIR)/.venv-tools
	$(CURDIR)/.venv-tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

.PHONY: lock
lock: $(UV) ## re-resolve uv.lock from pyproject.toml
	$(UV) lock

.PHONY: lint
lint: $(UV) ## ruff: lint and check the formatting of the package, tests and benchmarks
	$(UV) run --frozen --group test ruff check src tests bench dev dag-tests
	$(UV) run --frozen --group test ruff format --check src tests bench dev dag-tests

.PHONY: format
format: $(UV) ## ruff: fix what can be fixed and format the code
	$(UV) run --frozen --group test ruff check --fix src tests bench dev dag-tests
	$(UV) run --frozen --group test ruff format src tests bench dev dag-tests

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

.PHONY: test-faults
test-faults: build ## the fault injections (killed workers and schedulers, partitions, out of memory) on a fresh stack, about 20 min
	$(UV) run --frozen --group test pytest $(FAULT_TESTS)
