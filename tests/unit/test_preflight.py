"""Preflight refusals: missing and malformed settings, bounded waits."""

import time

import pytest

from airflow_stack import components, hostinit, preflight, settings
from airflow_stack.errors import StackError


def full_env() -> dict[str, str]:
    return {
        settings.FERNET_KEY.env: hostinit.fernet_key(),
        settings.JWT_SECRET.env: "j" * 64,
        settings.API_SECRET_KEY.env: "s" * 64,
        settings.SQL_ALCHEMY_CONN.env: "postgresql+psycopg2://u:p@db/airflow",
        settings.BROKER_URL.env: "redis://:p@redis:6379/0",
        settings.RESULT_BACKEND.env: "db+postgresql://u:p@db/airflow",
        settings.EXECUTION_API_SERVER_URL.env: "http://api-server:8080/execution/",
    }


@pytest.mark.parametrize("name", list(components.COMPONENTS))
def test_complete_environment_passes(name):
    preflight.check_required(components.get(name), full_env())


@pytest.mark.parametrize("setting", [settings.FERNET_KEY, settings.JWT_SECRET, settings.API_SECRET_KEY])
@pytest.mark.parametrize("name", ["api-server", "scheduler", "worker", "init"])
def test_missing_secret_is_refused_by_name(name, setting):
    env = full_env()
    del env[setting.env]
    with pytest.raises(StackError) as refusal:
        preflight.check_required(components.get(name), env)
    assert setting.env in refusal.value.problem
    assert setting.ini in refusal.value.setting
    assert "make init" in refusal.value.fix


@pytest.mark.parametrize("bad", ["not-a-key", "c2hvcnQ=", hostinit.fernet_key() + ",garbage"])
def test_invalid_fernet_key_is_refused(bad):
    env = full_env() | {settings.FERNET_KEY.env: bad}
    with pytest.raises(StackError) as refusal:
        preflight.check_required(components.get("scheduler"), env)
    assert "not a valid Fernet key" in refusal.value.problem
    assert refusal.value.setting == settings.FERNET_KEY.env


def test_rotation_list_of_valid_keys_passes():
    env = full_env() | {settings.FERNET_KEY.env: f"{hostinit.fernet_key()},{hostinit.fernet_key()}"}
    preflight.check_required(components.get("scheduler"), env)


@pytest.mark.parametrize("raw", ["0", "-5", "soon"])
def test_wait_timeout_must_be_positive(raw):
    with pytest.raises(StackError) as refusal:
        preflight.wait_timeout({"AIRFLOW_STACK_WAIT_TIMEOUT": raw})
    assert refusal.value.setting == "AIRFLOW_STACK_WAIT_TIMEOUT"


def test_unreachable_database_fails_within_the_bound_naming_host_and_port(unused_port):
    env = full_env() | {
        settings.SQL_ALCHEMY_CONN.env: f"postgresql+psycopg2://u:p@127.0.0.1:{unused_port}/airflow",
        "AIRFLOW_STACK_WAIT_TIMEOUT": "2",
    }
    started = time.monotonic()
    with pytest.raises(StackError) as refusal:
        preflight.wait_for_dependencies(components.get("dag-processor"), env)
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{unused_port}" in refusal.value.problem
    assert "did not answer within 2 s" in refusal.value.problem
    assert refusal.value.setting == settings.SQL_ALCHEMY_CONN.env


def test_unreachable_broker_fails_naming_host_and_port(unused_port):
    env = full_env() | {
        settings.BROKER_URL.env: f"redis://:p@127.0.0.1:{unused_port}/0",
        "AIRFLOW_STACK_WAIT_TIMEOUT": "1",
    }
    with pytest.raises(StackError) as refusal:
        preflight.wait_for_dependencies(components.get("flower"), env)
    assert f"Redis at 127.0.0.1:{unused_port}" in refusal.value.problem
    assert refusal.value.setting == settings.BROKER_URL.env
