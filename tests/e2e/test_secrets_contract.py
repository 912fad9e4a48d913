"""The secrets contract on the running stack: a component with a secret that differs from the
others' refuses to start within 60 s, naming it, while the stack keeps running DAGs; bad
settings are refused with a clear message; a component refuses a metadata DB its Airflow has not
migrated, naming the revisions; the fernet key rotates without losing a connection.

Shares the session's stack with test_stack.py.
"""

from __future__ import annotations

import secrets
import subprocess
import time

import pytest

from airflow_stack.host import envfile
from airflow_stack.host.stackwait import ONE_SHOT_SERVICES, read_states

from .conftest import ROOT, Stack, trigger_and_wait

REFUSAL_BOUND_S = 60


def start_one_off(stack: Stack, service: str, *env: str) -> tuple[subprocess.CompletedProcess, float]:
    """Start one more container of `service` with extra environment; return how it ended."""
    args = ["run", "--rm", "--no-deps"]
    for pair in env:
        args += ["-e", pair]
    started = time.monotonic()
    result = stack.run(*args, service, check=False, timeout=REFUSAL_BOUND_S + 60)
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("scheduler", "AIRFLOW__CORE__FERNET_KEY"),
        ("api-server", "AIRFLOW__API_AUTH__JWT_SECRET"),
        ("triggerer", "AIRFLOW__API__SECRET_KEY"),
        ("worker", "AIRFLOW__CORE__FERNET_KEY"),
        ("worker", "AIRFLOW__API_AUTH__JWT_SECRET"),
        ("worker", "AIRFLOW__API__SECRET_KEY"),
        ("db-migrate", "AIRFLOW__API__SECRET_KEY"),
    ],
)
def test_component_with_a_different_secret_refuses_naming_it(stack: Stack, service: str, variable: str):
    other = envfile.fernet_key() if variable.endswith("FERNET_KEY") else secrets.token_urlsafe(48)
    result, elapsed = start_one_off(stack, service, f"{variable}={other}")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert elapsed < REFUSAL_BOUND_S
    assert f"error: {variable} differs from" in result.stderr, output
    assert "fix:" in result.stderr
    assert other not in output
    print(f"\n{service} with a different {variable}: refused in {elapsed:.1f} s")


@pytest.mark.parametrize(
    ("service", "pair", "expected"),
    [
        ("scheduler", "AIRFLOW__CORE__FERNET_KEY=not-a-fernet-key", "is not a valid Fernet key"),
        ("dag-processor", "AIRFLOW__API__SECRET_KEY=", "AIRFLOW__API__SECRET_KEY"),
        ("api-server", "AIRFLOW__API_AUTH__JWT_SECRET=temporary_key", "is a well-known default"),
        (
            "flower",
            "AIRFLOW__CELERY__BROKER_URL=redis://:Zq8-not-here@redis-gone:6379/0",
            "Redis at redis-gone:6379 did not answer",
        ),
        (
            "flower",
            "AIRFLOW__CELERY__FLOWER_BASIC_AUTH=flower:admin",
            "AIRFLOW__CELERY__FLOWER_BASIC_AUTH is a well-known",
        ),
    ],
)
def test_bad_setting_is_refused_with_a_clear_message(stack: Stack, service: str, pair: str, expected: str):
    result, elapsed = start_one_off(stack, service, pair, "AIRFLOW_STACK_WAIT_TIMEOUT=5")
    assert result.returncode != 0
    assert expected in result.stderr, result.stdout + result.stderr
    assert "fix:" in result.stderr
    print(f"\n{service} with {pair.split('=')[0]} bad: refused in {elapsed:.1f} s")


def test_init_records_a_changed_secret_only_when_told_to(stack: Stack):
    current = stack.env["AIRFLOW_API_SECRET_KEY"]
    new = secrets.token_urlsafe(48)
    accept = "AIRFLOW_STACK_ACCEPT_NEW_SECRETS=secret_key"
    try:
        result, _ = start_one_off(stack, "db-migrate", f"AIRFLOW__API__SECRET_KEY={new}", accept)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "recorded secret fingerprints: secret_key" in result.stderr
        # Now the running stack's value is the old one: a component started with it is refused.
        refused, _ = start_one_off(stack, "triggerer")
        assert refused.returncode != 0 and "AIRFLOW__API__SECRET_KEY differs" in refused.stderr
    finally:
        restored, _ = start_one_off(stack, "db-migrate", f"AIRFLOW__API__SECRET_KEY={current}", accept)
        assert restored.returncode == 0, restored.stderr[-3000:]


def test_a_component_refuses_a_database_its_airflow_has_not_migrated(stack: Stack):
    # A second database on the same server, with the secrets' fingerprints db-migrate recorded
    # (so that only the migration differs), first without Airflow's tables, then at an older revision.
    stack.sql("postgres", "DROP DATABASE IF EXISTS migration_probe")
    stack.sql("postgres", "CREATE DATABASE migration_probe")
    recorded = stack.sql("airflow", "SELECT name || ' ' || fingerprint FROM airflow_stack_secret_fingerprint")
    rows = ", ".join(f"('{name}', '{value}')" for name, value in (line.split() for line in recorded.splitlines()))
    stack.sql(
        "migration_probe",
        "CREATE TABLE airflow_stack_secret_fingerprint"
        " (name VARCHAR(64) PRIMARY KEY, fingerprint VARCHAR(64) NOT NULL); "
        f"INSERT INTO airflow_stack_secret_fingerprint VALUES {rows}",
    )
    password = stack.env["POSTGRES_PASSWORD"]
    probe = (
        f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:{password}@postgres:5432/migration_probe"
    )
    head = stack.sql("airflow", "SELECT version_num FROM alembic_version").strip()

    result, _ = start_one_off(stack, "scheduler", probe, "AIRFLOW_STACK_WAIT_TIMEOUT=20")
    assert result.returncode != 0
    assert "error: the metadata DB has not been initialised: it has no alembic_version table" in result.stderr, (
        result.stderr[-3000:]
    )
    assert "run db-migrate with this image first" in result.stderr

    stack.sql(
        "migration_probe",
        "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY); "
        "INSERT INTO alembic_version VALUES ('29ce7909c52b')",  # Airflow 3.0.0's
    )
    for service in ("api-server", "dag-processor", "triggerer"):
        result, elapsed = start_one_off(stack, service, probe, "AIRFLOW_STACK_WAIT_TIMEOUT=20")
        assert result.returncode != 0, result.stderr[-3000:]
        assert "error: the metadata DB is at migration 29ce7909c52b, but this image's Airflow" in result.stderr, (
            result.stderr[-3000:]
        )
        assert f"needs {head}" in result.stderr and "run db-migrate with this image first" in result.stderr
        assert elapsed < REFUSAL_BOUND_S
    # The stack's own components checked theirs and left Airflow's check off (their first lines:
    # the whole log, as the api-server logs every request since).
    for service in ("api-server", "scheduler", "dag-processor", "triggerer"):
        logs = stack.logs(service, tail=1_000_000)
        assert f"migration check: the metadata DB is at {head}, this image's Airflow" in logs, (service, logs[:3000])
    stack.sql("postgres", "DROP DATABASE migration_probe")


def test_the_stack_is_unaffected_by_refused_components(stack: Stack):
    states = read_states(stack.compose)
    not_ready = {s.service: s for s in states if s.status(s.service in ONE_SHOT_SERVICES) != "ready"}
    assert not not_ready
    with stack.api() as api:
        trigger_and_wait(stack, api)


def test_fernet_key_rotation_keeps_connections_readable_and_drops_the_old_key(stack: Stack):
    old_key = stack.env["AIRFLOW_FERNET_KEY"]
    with stack.api() as api:
        created = api.post(
            "/connections",
            json={
                "connection_id": "rotation_probe",
                "conn_type": "http",
                "host": "example.invalid",
                "login": "user",
                "password": "before-rotation-Zq8",
            },
        )
        assert created.status_code == 201, created.text

    make = subprocess.run(
        [
            "make",
            "-C",
            str(ROOT),
            "rotate-fernet-key",
            f"COMPOSE={' '.join(stack.compose)}",
            f"ENV_FILE={stack.env_file}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert make.returncode == 0, make.stdout[-5000:] + make.stderr[-5000:] + stack.logs(tail=50)
    stack.reload_env()
    new_key = stack.env["AIRFLOW_FERNET_KEY"]
    assert "," not in new_key and new_key != old_key

    shown = stack.run("exec", "-T", "scheduler", "airflow", "connections", "get", "rotation_probe", "-o", "json")
    assert "before-rotation-Zq8" in shown.stdout

    # The stored ciphertext opens with the new key and no longer with the old one.
    check = (
        "import os; from cryptography.fernet import Fernet, InvalidToken; from airflow_stack.core import metadb\n"
        "conn = metadb.connect(os.environ); cur = conn.cursor()\n"
        "cur.execute(\"SELECT password FROM connection WHERE conn_id = 'rotation_probe'\")\n"
        "token = cur.fetchone()[0].encode()\n"
        "print('new:', Fernet(os.environ['NEW']).decrypt(token).decode())\n"
        "try:\n    Fernet(os.environ['OLD']).decrypt(token); print('old: opens')\n"
        "except InvalidToken:\n    print('old: InvalidToken')\n"
    )
    opened = stack.run(
        "exec", "-T", "-e", f"NEW={new_key}", "-e", f"OLD={old_key}", "scheduler", "python3", "-c", check
    )
    assert "new: before-rotation-Zq8" in opened.stdout and "old: InvalidToken" in opened.stdout, opened.stdout

    result, _ = start_one_off(stack, "scheduler", f"AIRFLOW__CORE__FERNET_KEY={old_key}")
    assert result.returncode != 0 and "AIRFLOW__CORE__FERNET_KEY differs" in result.stderr
