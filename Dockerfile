# One image for every Airflow component: api-server, scheduler, dag-processor, triggerer,
# Celery worker, Flower, and the one-shot jobs. Built from uv.lock (hashed);
# see docs/local-stack.md "The image".
#
# No `# syntax=` line on purpose: BuildKit would try to pull a frontend image, which fails
# on sites with no registry. The built-in frontend supports secrets and cache mounts.

ARG PYTHON_BASE_IMAGE=python:3.13-slim-trixie
# checkov:skip=CKV_DOCKER_7: the base is a build argument; its default names a fixed tag (3.13-slim-trixie).
# checkov:skip=CKV_DOCKER_2: one image runs every component; compose and ECS set each component's probe (`airflow-stack healthcheck COMPONENT`).

# ---------------------------------------------------------------------------------------
# Your requirements.txt and packages.txt (docs/dag-authoring.md). `make build` passes other
# files with --build-context user-deps=DIR (REQUIREMENTS_DIR).
FROM scratch AS user-deps
COPY requirements.txt packages.txt /

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_BASE_IMAGE} AS build

ARG UV_VERSION=0.13.9
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/opt/airflow/venv

# An optional CA bundle for TLS-intercepting proxies arrives as the BuildKit secret `ca`
# (`make build` passes the host's bundle): mounted for the one RUN, never in a layer.
# with-ca exports it to pip and uv when present.
RUN printf '#!/bin/sh\nif [ -s /run/secrets/ca ]; then export SSL_CERT_FILE=/run/secrets/ca PIP_CERT=/run/secrets/ca; fi\nexec "$@"\n' \
      > /usr/local/bin/with-ca \
 && chmod 755 /usr/local/bin/with-ca

RUN --mount=type=secret,id=ca \
    python3 -m venv /opt/uv \
 && with-ca /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

WORKDIR /src
# Dependencies first, so that a change to the package's code reuses this layer.
COPY pyproject.toml uv.lock ./
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-ca /opt/uv/bin/uv sync --frozen --no-dev --extra airflow --no-install-project

# The image's changes to Airflow's installed source (each named and explained in the script); the
# build stops when one does not apply to the Airflow just installed.
COPY src/airflow_stack/image/airflowpatches.py /usr/local/lib/airflow-stack/airflowpatches.py
RUN /opt/airflow/venv/bin/python /usr/local/lib/airflow-stack/airflowpatches.py

# Your requirements, held to the versions just installed from the lock; rebuilt only when
# requirements.txt (or this step's script) changes.
COPY src/airflow_stack/image/userdeps.py /usr/local/lib/airflow-stack/userdeps.py
COPY --from=user-deps /requirements.txt /src/user-deps/requirements.txt
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-ca /opt/airflow/venv/bin/python /usr/local/lib/airflow-stack/userdeps.py \
      requirements /src/user-deps/requirements.txt --uv /opt/uv/bin/uv

COPY README.md ./
COPY src ./src
# --inexact: keep your packages, which the lock does not list. Then the migration heads of the
# installed Airflow, which the components' start-up checks compare with the database.
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    with-ca /opt/uv/bin/uv sync --frozen --no-dev --extra airflow --no-editable --inexact \
 && /opt/uv/bin/uv export --frozen --only-group dag-tests --no-hashes --no-emit-project -o /opt/dag-tests.txt \
 && /opt/airflow/venv/bin/python -m airflow_stack.checks.migrations

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_BASE_IMAGE} AS runtime

# tini as PID 1 forwards SIGTERM to the component only (not to its process group), so the
# Celery main process does a warm shutdown: it stops taking tasks and waits for running
# ones, instead of its pool children being killed by the same signal.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

# Your Debian packages; rebuilt only when packages.txt changes.
COPY --from=user-deps /packages.txt /tmp/packages.txt
RUN --mount=type=bind,source=src/airflow_stack/image/userdeps.py,target=/tmp/userdeps.py \
    packages="$(python3 /tmp/userdeps.py packages /tmp/packages.txt)" \
 && if [ -n "$packages" ]; then \
      apt-get update \
      && apt-get install -y --no-install-recommends $packages \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && rm /tmp/packages.txt

ENV AIRFLOW_HOME=/opt/airflow \
    HOME=/home/airflow \
    PATH=/opt/airflow/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# uid 50000, gid 0 (as the official image): any uid with group 0 can also write where needed,
# so compose can run the containers as the host user (AIRFLOW_UID) for bind-mounted logs.
# /opt/airflow/private: dag-sync keeps the release store there, in a folder only group 0 may
# enter, so that the uid its DAG validation runs as cannot reach it (docs/dag-deployment.md).
RUN useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow \
 && mkdir -p /opt/airflow/dags /opt/airflow/logs /opt/airflow/plugins /opt/airflow/dag-releases \
 && chown -R 50000:0 /opt/airflow /home/airflow \
 && chmod -R g+rwX /opt/airflow /home/airflow \
 && install -d -m 0770 -o 50000 -g 0 /opt/airflow/private \
 && install -d -m 0775 -o 50000 -g 0 /opt/airflow/private/dag-releases

COPY --from=build --chown=50000:0 /opt/airflow/venv /opt/airflow/venv
# The CAs that sign Amazon RDS's server certificates, for the ECS services' sslmode=verify-full
# (`make -C deploy/aws rds-ca` puts them into the build context; without them the folder holds
# only its README, and a service asking to verify refuses to start, naming the fix).
COPY deploy/aws/rds-ca/ /opt/airflow-stack/rds-ca/

USER 50000
WORKDIR /opt/airflow
EXPOSE 8080 5555 8793 8974
ENTRYPOINT ["/usr/bin/tini", "--", "airflow-stack"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------
# `make dags-test`: the production image plus pytest (from the lock's dag-tests group), for
# your DAG repository's tests. Never pushed: the production image below has no test tools.
FROM runtime AS dag-tests
USER 0
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,from=build,source=/opt/uv,target=/opt/uv \
    --mount=type=bind,from=build,source=/usr/local/bin/with-ca,target=/usr/local/bin/with-ca \
    --mount=type=bind,from=build,source=/opt/dag-tests.txt,target=/tmp/dag-tests.txt \
    with-ca /opt/uv/bin/uv pip install --python /opt/airflow/venv/bin/python -r /tmp/dag-tests.txt
USER 50000

# ---------------------------------------------------------------------------------------
FROM runtime

# Last, so that a new commit changes only the image's metadata, not a cached layer.
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
# The Airflow version is pinned in pyproject.toml only; `make build` reads it from uv.lock.
ARG AIRFLOW_VERSION=unknown
LABEL org.opencontainers.image.title="airflow-stack" \
      org.opencontainers.image.description="Apache Airflow ${AIRFLOW_VERSION} on the CeleryExecutor: one image for every component" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.airflow-stack.airflow-version="${AIRFLOW_VERSION}"
