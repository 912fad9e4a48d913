"""The configuration contract: *_FILE twins and what counts as provided."""

import pytest

from airflow_stack import settings
from airflow_stack.errors import StackError


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
    env = {settings.JWT_SECRET.env + suffix: "x"}
    assert settings.is_provided(settings.JWT_SECRET, env)


def test_empty_value_is_not_provided():
    assert not settings.is_provided(settings.JWT_SECRET, {settings.JWT_SECRET.env: ""})


def test_env_names_follow_airflow_convention():
    assert settings.API_SECRET_KEY.env == "AIRFLOW__API__SECRET_KEY"
    assert settings.FERNET_KEY.ini == "[core] fernet_key"
