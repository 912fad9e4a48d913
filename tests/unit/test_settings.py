"""The settings registry: types, refusals by name, *_FILE twins, the docs it generates, and what
counts as provided."""

import re
from pathlib import Path

import pytest

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError


def test_file_twin_becomes_the_plain_variable(tmp_path):
    secret = tmp_path / "fernet"
    secret.write_text("value-from-file\n")
    env = {"AIRFLOW__CORE__FERNET_KEY_FILE": str(secret)}
    settings.resolve_file_twins(env)
    assert env == {"AIRFLOW__CORE__FERNET_KEY": "value-from-file"}


def test_file_twin_and_plain_variable_together_are_refused(tmp_path):
    secret = tmp_path / "fernet"
    secret.write_text("a")
    env = {"AIRFLOW__CORE__FERNET_KEY_FILE": str(secret), "AIRFLOW__CORE__FERNET_KEY": "b"}
    with pytest.raises(StackError) as refusal:
        settings.resolve_file_twins(env)
    assert "only one source" in refusal.value.problem
    assert refusal.value.setting == "AIRFLOW__CORE__FERNET_KEY"


def test_unreadable_file_names_the_variable_and_the_path(tmp_path):
    missing = tmp_path / "nope"
    env = {"AIRFLOW__API_AUTH__JWT_SECRET_FILE": str(missing)}
    with pytest.raises(StackError) as refusal:
        settings.resolve_file_twins(env)
    assert "AIRFLOW__API_AUTH__JWT_SECRET_FILE" in refusal.value.problem
    assert str(missing) in refusal.value.problem


@pytest.mark.parametrize("suffix", ["", "_CMD", "_SECRET"])
def test_airflow_forms_count_as_provided(suffix):
    env = {settings.JWT_SECRET.name + suffix: "x"}
    assert settings.is_provided(settings.JWT_SECRET, env)


def test_empty_value_is_not_provided():
    assert not settings.is_provided(settings.JWT_SECRET, {settings.JWT_SECRET.name: ""})


def test_env_names_follow_airflow_convention():
    assert settings.API_SECRET_KEY.name == "AIRFLOW__API__SECRET_KEY"
    assert settings.FERNET_KEY.ini == "[core] fernet_key"


def test_passwords_are_put_into_the_urls_that_lack_them_quoted():
    env = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow@db.internal:5432/airflow",
        "AIRFLOW__CELERY__RESULT_BACKEND": "rediss://cache.internal:6379/1?ssl_cert_reqs=required",
        "AIRFLOW__CELERY__BROKER_URL": "rediss://cache.internal:6379/0?ssl_cert_reqs=required",
        "AIRFLOW_STACK_DB_PASSWORD": "p@ss:w/rd",
        "AIRFLOW_STACK_REDIS_PASSWORD": "t0ken#1",
    }
    settings.inject_passwords(env)
    assert (
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        == "postgresql+psycopg2://airflow:p%40ss%3Aw%2Frd@db.internal:5432/airflow"
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "rediss://:t0ken%231@cache.internal:6379/0?ssl_cert_reqs=required"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "rediss://:t0ken%231@cache.internal:6379/1?ssl_cert_reqs=required"
    from urllib.parse import unquote, urlsplit

    assert unquote(urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]).password) == "p@ss:w/rd"


def test_a_database_result_backend_takes_the_database_password():
    env = {
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+postgresql://airflow@postgres/airflow",
        "AIRFLOW_STACK_DB_PASSWORD": "secret",
        "AIRFLOW_STACK_REDIS_PASSWORD": "other",
    }
    settings.inject_passwords(env)
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql://airflow:secret@postgres/airflow"


def test_a_url_with_a_password_and_the_variable_together_are_refused():
    env = {
        "AIRFLOW__CELERY__BROKER_URL": "redis://:inline@redis:6379/0",
        "AIRFLOW_STACK_REDIS_PASSWORD": "separate",
    }
    with pytest.raises(StackError) as caught:
        settings.inject_passwords(env)
    assert caught.value.setting == "AIRFLOW__CELERY__BROKER_URL"
    assert "AIRFLOW_STACK_REDIS_PASSWORD" in caught.value.problem
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:inline@redis:6379/0"


def test_without_the_variables_nothing_changes():
    env = {"AIRFLOW__CELERY__BROKER_URL": "redis://redis:6379/0"}
    settings.inject_passwords(env)
    assert env == {"AIRFLOW__CELERY__BROKER_URL": "redis://redis:6379/0"}


def test_the_flower_password_becomes_its_basic_auth_and_may_not_double_it():
    env = {"AIRFLOW_STACK_FLOWER_PASSWORD": "s3cret", "AIRFLOW_STACK_FLOWER_USERNAME": "ops"}
    settings.inject_passwords(env)
    assert env["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"] == "ops:s3cret"
    with pytest.raises(StackError) as caught:
        settings.inject_passwords(env)
    assert caught.value.setting == "AIRFLOW__CELERY__FLOWER_BASIC_AUTH"


@pytest.mark.parametrize(
    ("raw", "expected"), [("", True), ("true", True), ("YES", True), ("false", False), ("0", False)]
)
def test_log_servers_run_unless_switched_off(raw, expected):
    from airflow_stack.core import components

    argv = components.argv(components.get("worker"), {settings.SERVE_LOGS.name: raw})
    assert ("--skip-serve-logs" not in argv) is expected
    assert argv[:3] == ("airflow", "celery", "worker")


def test_a_component_without_a_log_server_is_never_given_the_flag():
    from airflow_stack.core import components

    assert components.argv(components.get("scheduler"), {settings.SERVE_LOGS.name: "false"}) == ("airflow", "scheduler")


def test_the_triggerer_and_the_dag_processor_run_airflow_through_the_log_file_guard():
    import sys

    from airflow_stack.core import components

    for name in ("triggerer", "dag-processor"):
        argv = components.argv(components.get(name), {settings.SERVE_LOGS.name: "false"})
        assert argv[:4] == (sys.executable, "-m", "airflow_stack.ops.logfiles", name)
        assert argv[4:6] == ("airflow", name)
    assert components.argv(components.get("triggerer"), {})[-2:] == ("airflow", "triggerer")


def test_a_serve_logs_value_that_is_not_a_boolean_is_refused_by_name():
    from airflow_stack.core import components

    with pytest.raises(StackError, match="AIRFLOW_STACK_SERVE_LOGS='off' is neither true nor false"):
        components.argv(components.get("triggerer"), {settings.SERVE_LOGS.name: "off"})


def test_flower_gets_the_broker_and_basic_auth_through_the_environment_only():
    from airflow_stack.core import components

    env = {settings.BROKER_URL.name: "redis://:pw@redis:6379/0", settings.FLOWER_BASIC_AUTH.name: "flower:pw"}
    components.flower_environment(env)
    assert env["CELERY_BROKER_URL"] == "redis://:pw@redis:6379/0"
    assert env["FLOWER_BASIC_AUTH"] == "flower:pw"
    assert env["FLOWER_MAX_TASKS"] == "5000"
    assert not any("pw" in arg for arg in components.argv(components.get("flower"), env))


def test_flower_keeps_as_many_tasks_as_configured_and_refuses_a_bound_below_100():
    from airflow_stack.core import components

    env = {settings.BROKER_URL.name: "redis://redis:6379/0", settings.FLOWER_MAX_TASKS.name: "20000"}
    components.flower_environment(env)
    assert env["FLOWER_MAX_TASKS"] == "20000"
    with pytest.raises(StackError, match="AIRFLOW_STACK_FLOWER_MAX_TASKS"):
        components.flower_environment(
            {settings.BROKER_URL.name: "redis://redis:6379/0", settings.FLOWER_MAX_TASKS.name: "0"}
        )


def test_flower_refuses_a_broker_url_it_cannot_resolve():
    from airflow_stack.core import components

    with pytest.raises(StackError, match="AIRFLOW__CELERY__BROKER_URL_CMD"):
        components.flower_environment({f"{settings.BROKER_URL.name}_CMD": "cat /secret"})


# -- the registry ------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]


def test_docs_configuration_is_generated_from_the_registry():
    """`make docs` writes it; edit the registry, then run it."""
    assert (ROOT / "docs" / "configuration.md").read_text() == settings.markdown()


def test_every_stack_variable_in_compose_and_the_templates_is_declared():
    """What a container's environment gets: compose's `environment:` keys, the templates' `Name:`s."""
    compose = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"^\s+(AIRFLOW_STACK_[A-Z0-9_]+):", compose, re.M))
    for template in (ROOT / "deploy" / "aws" / "templates").glob("*.yaml"):
        used |= set(re.findall(r"Name: (AIRFLOW_STACK_[A-Z0-9_]+)", template.read_text()))
    assert len(used) > 20
    assert (
        sorted(n for n in used if n not in settings.REGISTRY and n.removesuffix("_FILE") not in settings.REGISTRY) == []
    )


def test_every_setting_has_a_description_group_and_anchor():
    for setting in settings.REGISTRY.values():
        assert setting.description.endswith((".", ")")) and setting.group, setting.name
        assert setting.anchor == f"docs/configuration.md#{setting.name.lower()}"


BAD_VALUES = {
    "true or false": "maybe",
    "whole number": "5s",
    "seconds": "5s",
    "number of": "-1",
    "URL": "nowhere",
    "comma-separated": "log,statsd",
}


@pytest.mark.parametrize(
    "setting",
    [s for s in settings.REGISTRY.values() if s.kind is not settings.TEXT and s.kind is not settings.PATH],
    ids=lambda s: s.name,
)
def test_a_bad_value_is_refused_naming_the_setting_and_the_fix(setting):
    bad = next(value for key, value in BAD_VALUES.items() if key in setting.kind.expects)
    with pytest.raises(StackError) as refusal:
        setting.read({setting.name: bad})
    assert refusal.value.setting == setting.name
    assert refusal.value.problem.startswith(f"{setting.name}=")
    assert setting.kind.expects in refusal.value.fix and setting.anchor in refusal.value.fix
    if setting.secret:
        assert bad not in refusal.value.render()


@pytest.mark.parametrize("setting", [s for s in settings.REGISTRY.values() if s.secret], ids=lambda s: s.name)
def test_every_secret_has_a_file_twin_and_both_at_once_is_refused(setting, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    env = {setting.file_twin: str(secret)}
    assert settings.resolve_file_twins(env) == [setting.name]
    assert env == {setting.name: "from-a-file"}
    with pytest.raises(StackError, match="only one source is allowed") as refusal:
        settings.resolve_file_twins({setting.name: "x", setting.file_twin: str(secret)})
    assert refusal.value.setting == setting.name


def test_an_unknown_stack_variable_is_refused_with_the_likely_name():
    with pytest.raises(StackError, match="AIRFLOW_STACK_DAG_SYNC_INTERVL is not a setting") as refusal:
        settings.check_known({"AIRFLOW_STACK_DAG_SYNC_INTERVL": "5"})
    assert refusal.value.setting == "AIRFLOW_STACK_DAG_SYNC_INTERVL"
    assert "did you mean AIRFLOW_STACK_DAG_SYNC_INTERVAL?" in refusal.value.fix
    settings.check_known({"AIRFLOW_STACK_DAG_SOURCE_TOKEN_FILE": "/run/secrets/token", "AIRFLOW__CORE__X": "1"})
    with pytest.raises(StackError, match="AIRFLOW_STACK_WAIT_TIMEOUT_FILE is not a setting"):
        settings.check_known({"AIRFLOW_STACK_WAIT_TIMEOUT_FILE": "/run/secrets/timeout"})  # not a secret: no twin


def test_the_settings_command_masks_secrets_and_names_bad_values(capsys, tmp_path):
    from airflow_stack import cli

    token = tmp_path / "token"
    token.write_text("s3cr3t-token")
    env = {
        "AIRFLOW_STACK_DAG_SOURCE_TOKEN_FILE": str(token),
        "AIRFLOW__CORE__FERNET_KEY": "k" * 44,
        "AIRFLOW_STACK_WAIT_TIMEOUT": "soon",
        "AIRFLOW_STACK_DAG_KEEP_RELEASES": "3",
    }
    assert cli.main(["settings"], env) == 0
    out = capsys.readouterr().out
    assert "s3cr3t" not in out and "k" * 44 not in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert lines["AIRFLOW_STACK_DAG_SOURCE_TOKEN"].endswith("**** (from file)")
    assert "INVALID: 'soon' is not a number" in lines["AIRFLOW_STACK_WAIT_TIMEOUT"]
    assert lines["AIRFLOW_STACK_DAG_KEEP_RELEASES"].endswith(" 3")
    assert lines["AIRFLOW_STACK_DAG_SYNC_INTERVAL"].endswith("5 (default)")


def test_a_bad_dag_sync_interval_makes_the_probe_unhealthy_not_a_traceback(capsys, tmp_path):
    from airflow_stack.checks import healthcheck

    env = {"AIRFLOW_STACK_DAG_RELEASES_DIR": str(tmp_path), "AIRFLOW_STACK_DAG_SYNC_INTERVAL": "5s"}
    (tmp_path / "status.json").write_text('{"last_check": "2020-01-01T00:00:00Z"}')
    assert healthcheck.main("dag-sync", env) == 1
    assert capsys.readouterr().err.startswith("unhealthy: AIRFLOW_STACK_DAG_SYNC_INTERVAL='5s' is not a number")


@pytest.mark.parametrize(
    ("raw", "problem"), [("0", "is not above 0"), ("-1", "is not above 0"), ("nan", "finite"), ("inf", "finite")]
)
def test_a_duration_must_be_a_finite_number_above_zero(raw, problem):
    with pytest.raises(StackError, match=problem):
        settings.WAIT_TIMEOUT.read({"AIRFLOW_STACK_WAIT_TIMEOUT": raw})
    assert settings.WAIT_TIMEOUT.read({"AIRFLOW_STACK_WAIT_TIMEOUT": "0.5"}) == 0.5
