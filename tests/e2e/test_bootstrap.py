"""The bootstrap job on the running stack: idempotent, updates what changed, leaves what it
does not manage alone, and applies nothing from a bad file."""

from __future__ import annotations

import subprocess

from .conftest import Stack

GOOD = """\
connections:
  e2e_api:
    conn_type: http
    host: api.example.invalid
    login: robot
    password: ${E2E_API_TOKEN}
    extra: {timeout: 30}
variables:
  e2e_environment: ${E2E_ENVIRONMENT:-test}
pools:
  e2e_pool: {slots: 3, description: bootstrap test}
"""

BAD = """\
connections:
  e2e_never_created:
    conn_type: http
  e2e_api:
    conn_type: http
    hostname: typo.example.invalid
variables:
  e2e_other: ${E2E_UNSET_VARIABLE}
pools:
  e2e_pool: {slots: many}
"""


def run_bootstrap(stack: Stack, text: str, *env: str) -> subprocess.CompletedProcess:
    path = stack.workdir / "bootstrap.yaml"
    path.write_text(text)
    path.chmod(0o644)
    args = [
        "run",
        "--rm",
        "--no-deps",
        "-v",
        f"{path}:/tmp/bootstrap.yaml:ro",
        "-e",
        "AIRFLOW_STACK_BOOTSTRAP_FILE=/tmp/bootstrap.yaml",
    ]
    for pair in env:
        args += ["-e", pair]
    return stack.run(*args, "bootstrap", check=False, timeout=180)


def snapshot(stack: Stack) -> dict:
    with stack.api() as api:
        return {
            kind: sorted(str(item) for item in api.get(f"/{kind}", params={"limit": 100}).json()[kind])
            for kind in ("connections", "variables", "pools")
        }


def test_the_shipped_file_was_applied_at_start(stack: Stack):
    assert "bootstrap: " in stack.logs("bootstrap")
    with stack.api() as api:
        for conn_id in ("aws_default", "s3_Airflow_Logs"):
            connection = api.get(f"/connections/{conn_id}")
            assert connection.status_code == 200 and connection.json()["conn_type"] == "aws"


def test_applied_twice_changes_nothing_and_a_changed_value_is_updated(stack: Stack):
    with stack.api() as api:
        assert api.post("/connections", json={"connection_id": "e2e_unmanaged", "conn_type": "http"}).status_code == 201
    first = run_bootstrap(stack, GOOD, "E2E_API_TOKEN=token-one-Zq8")
    assert first.returncode == 0, first.stderr[-3000:]
    for line in ("created connection e2e_api", "created variable e2e_environment", "created pool e2e_pool"):
        assert line in first.stderr
    assert "token-one-Zq8" not in first.stdout + first.stderr

    second = run_bootstrap(stack, GOOD, "E2E_API_TOKEN=token-one-Zq8")
    assert second.returncode == 0 and "nothing to change" in second.stderr, second.stderr[-3000:]

    third = run_bootstrap(stack, GOOD, "E2E_API_TOKEN=token-two-Zq8", "E2E_ENVIRONMENT=staging")
    assert third.returncode == 0, third.stderr[-3000:]
    assert "updated connection e2e_api (password)" in third.stderr
    assert "updated variable e2e_environment (value)" in third.stderr
    assert "2 updated" in third.stderr

    shown = stack.run("exec", "-T", "scheduler", "airflow", "connections", "get", "e2e_api", "-o", "json")
    assert "token-two-Zq8" in shown.stdout
    with stack.api() as api:
        assert api.get("/variables/e2e_environment").json()["value"] == "staging"
        assert api.get("/pools/e2e_pool").json()["slots"] == 3
        assert api.get("/connections/e2e_unmanaged").status_code == 200


def test_a_bad_file_is_refused_with_lines_and_nothing_is_applied(stack: Stack):
    before = snapshot(stack)
    result = run_bootstrap(stack, BAD)
    assert result.returncode != 0
    message = result.stderr
    assert "/tmp/bootstrap.yaml is not valid" in message and "nothing was applied" in message
    assert "/tmp/bootstrap.yaml:6: connections.e2e_api.hostname: Extra inputs are not permitted" in message
    assert "/tmp/bootstrap.yaml:8: variables.e2e_other: environment variable E2E_UNSET_VARIABLE is not set" in message
    assert "/tmp/bootstrap.yaml:10: pools.e2e_pool.slots" in message
    assert snapshot(stack) == before


REFUSED_BY_THE_DATABASE = """\
connections:
  e2e_first_of_two:
    conn_type: http
  e2e_port_too_large:
    conn_type: http
    port: 99999999999
"""


def test_an_object_the_database_refuses_is_named_and_nothing_is_applied(stack: Stack):
    """A port past PostgreSQL's integer passes the file's checks but not the database."""
    before = snapshot(stack)
    result = run_bootstrap(stack, REFUSED_BY_THE_DATABASE)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "the database refused connection 'e2e_port_too_large'" in result.stderr, result.stderr[-3000:]
    assert "nothing was applied" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(stack) == before
