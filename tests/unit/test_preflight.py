"""Preflight refusals: missing and malformed settings, bounded waits."""

import time

import pytest

from airflow_stack.checks import preflight, waiting
from airflow_stack.core import components, settings
from airflow_stack.core.errors import StackError
from airflow_stack.host import envfile


def full_env() -> dict[str, str]:
    return {
        settings.FERNET_KEY.name: envfile.fernet_key(),
        settings.JWT_SECRET.name: "j" * 64,
        settings.API_SECRET_KEY.name: "s" * 64,
        settings.SQL_ALCHEMY_CONN.name: "postgresql+psycopg2://u:Zq8-pass@db/airflow",
        settings.BROKER_URL.name: "redis://:Zq8-pass@redis:6379/0",
        settings.RESULT_BACKEND.name: "db+postgresql://u:Zq8-pass@db/airflow",
        settings.EXECUTION_API_SERVER_URL.name: "http://api-server:8080/execution/",
        settings.DAG_SOURCE.name: "http://artifacts:8080/dags/LATEST",
    }


@pytest.mark.parametrize("name", list(components.COMPONENTS))
def test_complete_environment_passes(name):
    preflight.check_required(components.get(name), full_env())


@pytest.mark.parametrize("setting", [settings.FERNET_KEY, settings.JWT_SECRET, settings.API_SECRET_KEY])
@pytest.mark.parametrize("name", ["api-server", "scheduler", "worker", "db-migrate"])
def test_missing_secret_is_refused_by_name(name, setting):
    env = full_env()
    del env[setting.name]
    with pytest.raises(StackError) as refusal:
        preflight.check_required(components.get(name), env)
    assert setting.name in refusal.value.problem
    assert setting.ini in refusal.value.setting
    assert "make secrets" in refusal.value.fix


@pytest.mark.parametrize("bad", ["not-a-key", "c2hvcnQ=", envfile.fernet_key() + ",garbage"])
def test_invalid_fernet_key_is_refused(bad):
    env = full_env() | {settings.FERNET_KEY.name: bad}
    with pytest.raises(StackError) as refusal:
        preflight.check_required(components.get("scheduler"), env)
    assert "not a valid Fernet key" in refusal.value.problem
    assert refusal.value.setting == settings.FERNET_KEY.name


def test_rotation_list_of_valid_keys_passes():
    env = full_env() | {settings.FERNET_KEY.name: f"{envfile.fernet_key()},{envfile.fernet_key()}"}
    preflight.check_required(components.get("scheduler"), env)


@pytest.mark.parametrize("raw", ["0", "-5", "soon"])
def test_wait_timeout_must_be_positive(raw):
    env = full_env() | {"AIRFLOW_STACK_WAIT_TIMEOUT": raw}
    with pytest.raises(StackError) as refusal:
        preflight.wait_for_dependencies(components.get("scheduler"), env)
    assert refusal.value.setting == "AIRFLOW_STACK_WAIT_TIMEOUT"


def test_unreachable_database_fails_within_the_bound_naming_host_and_port(unused_port):
    env = full_env() | {
        settings.SQL_ALCHEMY_CONN.name: f"postgresql+psycopg2://u:p@127.0.0.1:{unused_port}/airflow",
        "AIRFLOW_STACK_WAIT_TIMEOUT": "2",
    }
    started = time.monotonic()
    with pytest.raises(StackError) as refusal:
        preflight.wait_for_dependencies(components.get("dag-processor"), env)
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{unused_port}" in refusal.value.problem
    assert "did not answer within 2 s" in refusal.value.problem
    assert refusal.value.setting == settings.SQL_ALCHEMY_CONN.name


def test_unreachable_broker_fails_naming_host_and_port(unused_port):
    env = full_env() | {
        settings.BROKER_URL.name: f"redis://:p@127.0.0.1:{unused_port}/0",
        "AIRFLOW_STACK_WAIT_TIMEOUT": "1",
    }
    with pytest.raises(StackError) as refusal:
        preflight.wait_for_dependencies(components.get("flower"), env)
    assert f"Redis at 127.0.0.1:{unused_port}" in refusal.value.problem
    assert refusal.value.setting == settings.BROKER_URL.name


@pytest.mark.parametrize("setting", [settings.JWT_SECRET, settings.API_SECRET_KEY])
@pytest.mark.parametrize(("value", "problem"), [("airflow", "well-known default"), ("x" * 31, "shorter than 32")])
def test_weak_jwt_secret_or_api_secret_key_is_refused(setting, value, problem):
    env = full_env() | {setting.name: value}
    with pytest.raises(StackError) as refusal:
        preflight.check_required(components.get("api-server"), env)
    assert setting.name in refusal.value.problem and problem in refusal.value.problem
    assert value not in refusal.value.render().replace(setting.name, "")


@pytest.mark.parametrize(
    ("name", "variable", "value", "named"),
    [
        (
            "scheduler",
            settings.SQL_ALCHEMY_CONN.name,
            "postgresql+psycopg2://airflow:airflow@db/airflow",
            settings.SQL_ALCHEMY_CONN.name,
        ),
        ("scheduler", settings.BROKER_URL.name, "redis://redis:6379/0", settings.BROKER_URL.name),
        (
            "worker",
            settings.RESULT_BACKEND.name,
            "db+postgresql://airflow:postgres@db/airflow",
            settings.RESULT_BACKEND.name,
        ),
        ("flower", "AIRFLOW__CELERY__FLOWER_BASIC_AUTH", "admin:admin", "AIRFLOW__CELERY__FLOWER_BASIC_AUTH"),
        ("db-migrate", "AIRFLOW_ADMIN_PASSWORD", "", "AIRFLOW_ADMIN_PASSWORD"),
    ],
)
def test_empty_or_well_known_password_is_refused(name, variable, value, named):
    env = full_env() | {"AIRFLOW_ADMIN_USERNAME": "admin", "AIRFLOW_ADMIN_PASSWORD": "Zq8-random-enough"}
    env[variable] = value
    with pytest.raises(StackError) as refusal:
        preflight.check_passwords(components.get(name), env)
    assert named in refusal.value.problem
    assert settings.ALLOW_WEAK_SECRETS.name in refusal.value.fix
    preflight.check_passwords(components.get(name), env | {settings.ALLOW_WEAK_SECRETS.name: "true"})


def test_generated_passwords_pass():
    env = full_env() | {"AIRFLOW__CELERY__FLOWER_BASIC_AUTH": "flower:Zq8-random-enough"}
    for name in components.COMPONENTS:
        preflight.check_passwords(components.get(name), env)


def test_api_server_base_is_derived_from_the_execution_url():
    env = {settings.EXECUTION_API_SERVER_URL.name: "http://api-server:8080/execution/"}
    assert preflight.api_server_base(env) == "http://api-server:8080"


def test_worker_refuses_when_the_api_server_never_answers(unused_port):
    env = full_env() | {settings.EXECUTION_API_SERVER_URL.name: f"http://127.0.0.1:{unused_port}/execution/"}
    with pytest.raises(StackError) as refusal:
        waiting.wait_for_execution_api(preflight.api_server_base(env), settings.EXECUTION_API_SERVER_URL.name, 1)
    assert f"127.0.0.1:{unused_port}/execution/ did not answer within 1 s" in refusal.value.problem
    assert refusal.value.setting == settings.EXECUTION_API_SERVER_URL.name
