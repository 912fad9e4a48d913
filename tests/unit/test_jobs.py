"""The one-shot jobs' decisions, with the metadata DB replaced by a dict: db-migrate records
fingerprints and refuses changed secrets (a changed fernet key always), creates the admin user
without its password on a command line; rotation records a new fernet key only when the
recorded one is among the old ones."""

from __future__ import annotations

import sys
import types

import pytest

from airflow_stack.checks import fingerprints
from airflow_stack.core import metadb
from airflow_stack.core.errors import StackError
from airflow_stack.host import envfile
from airflow_stack.jobs import db_migrate, rotation

FAB = db_migrate.FAB_AUTH_MANAGER


class FakeConnection:
    def close(self) -> None:
        pass


@pytest.fixture
def recorded(monkeypatch) -> dict[str, str]:
    """The fingerprint table, as a dict."""
    table: dict[str, str] = {}
    monkeypatch.setattr(metadb, "connect", lambda env: FakeConnection())
    monkeypatch.setattr(metadb, "read_fingerprints", lambda conn: dict(table))
    monkeypatch.setattr(metadb, "write_fingerprints", lambda conn, new: table.update(new))
    return table


def secrets_env(fernet: str, jwt: str = "j" * 40, key: str = "k" * 40) -> dict[str, str]:
    return {"AIRFLOW__CORE__FERNET_KEY": fernet, "AIRFLOW__API_AUTH__JWT_SECRET": jwt, "AIRFLOW__API__SECRET_KEY": key}


def test_the_first_run_records_and_a_second_with_the_same_secrets_changes_nothing(recorded):
    env = secrets_env(envfile.fernet_key())
    db_migrate.record_fingerprints(env)
    assert recorded == fingerprints.of_environment(env)
    before = dict(recorded)
    db_migrate.record_fingerprints(env)
    assert recorded == before


def test_a_changed_fernet_key_is_refused_even_when_accepted(recorded):
    db_migrate.record_fingerprints(secrets_env(envfile.fernet_key()))
    before = dict(recorded)
    changed = secrets_env(envfile.fernet_key()) | {"AIRFLOW_STACK_ACCEPT_NEW_SECRETS": "jwt_secret,secret_key"}
    with pytest.raises(StackError, match="AIRFLOW__CORE__FERNET_KEY differs") as refusal:
        db_migrate.record_fingerprints(changed)
    assert "make rotate-fernet-key" in refusal.value.fix
    assert recorded == before


def test_a_changed_jwt_secret_is_recorded_only_when_accepted(recorded):
    fernet = envfile.fernet_key()
    db_migrate.record_fingerprints(secrets_env(fernet))
    with pytest.raises(StackError, match="AIRFLOW__API_AUTH__JWT_SECRET differs") as refusal:
        db_migrate.record_fingerprints(secrets_env(fernet, jwt="n" * 40))
    assert "AIRFLOW_STACK_ACCEPT_NEW_SECRETS=jwt_secret" in refusal.value.fix
    accepted = secrets_env(fernet, jwt="n" * 40) | {"AIRFLOW_STACK_ACCEPT_NEW_SECRETS": "jwt_secret"}
    db_migrate.record_fingerprints(accepted)
    assert recorded["jwt_secret"] == fingerprints.fingerprint("n" * 40)


@pytest.fixture
def users_create(monkeypatch) -> list:
    """Airflow's `users create` command function, recorded instead of run."""
    calls: list = []
    module = types.ModuleType("user_command")
    module.users_create = calls.append
    monkeypatch.setitem(sys.modules, "airflow.providers.fab.auth_manager.cli_commands.user_command", module)
    return calls


def test_the_admin_is_created_in_process_with_the_password_in_memory(users_create, monkeypatch):
    monkeypatch.setattr(db_migrate.subprocess, "run", lambda *a, **k: pytest.fail("no subprocess may see the password"))
    env = {
        "AIRFLOW_ADMIN_USERNAME": "admin",
        "AIRFLOW_ADMIN_PASSWORD": "Zq8-pass-word",
        "AIRFLOW__CORE__AUTH_MANAGER": db_migrate.FAB_AUTH_MANAGER,
    }
    db_migrate.create_admin(env)
    (arguments,) = users_create
    assert (arguments.username, arguments.password, arguments.role) == ("admin", "Zq8-pass-word", "Admin")
    assert arguments.email == "admin@example.invalid" and not arguments.use_random_password


def test_no_admin_without_a_user_or_with_another_auth_manager_and_none_without_a_password(users_create):
    db_migrate.create_admin({"AIRFLOW_ADMIN_PASSWORD": "x"})
    db_migrate.create_admin({"AIRFLOW_ADMIN_USERNAME": "admin", "AIRFLOW_ADMIN_PASSWORD": "x"})
    assert users_create == []
    with pytest.raises(StackError, match="AIRFLOW_ADMIN_PASSWORD is empty"):
        db_migrate.create_admin({"AIRFLOW_ADMIN_USERNAME": "admin", "AIRFLOW__CORE__AUTH_MANAGER": FAB})


def test_a_failed_user_creation_is_a_refusal_naming_the_user(monkeypatch):
    module = types.ModuleType("user_command")

    def refuse(arguments):
        raise SystemExit("Admin is not a valid role")

    module.users_create = refuse
    monkeypatch.setitem(sys.modules, "airflow.providers.fab.auth_manager.cli_commands.user_command", module)
    env = {"AIRFLOW_ADMIN_USERNAME": "ops", "AIRFLOW_ADMIN_PASSWORD": "p", "AIRFLOW__CORE__AUTH_MANAGER": FAB}
    with pytest.raises(StackError, match="creating admin user 'ops' failed: Admin is not a valid role"):
        db_migrate.create_admin(env)


def test_rotation_records_the_new_key_only_when_the_recorded_one_is_among_the_old(recorded):
    old, new, stranger = envfile.fernet_key(), envfile.fernet_key(), envfile.fernet_key()
    recorded["fernet_key"] = fingerprints.fingerprint(old)
    with pytest.raises(StackError, match="none of the fernet keys") as refusal:
        rotation.record({"AIRFLOW__CORE__FERNET_KEY": f"{new},{stranger}"})
    assert "CURRENT_KEY" in refusal.value.fix and recorded["fernet_key"] == fingerprints.fingerprint(old)
    rotation.record({"AIRFLOW__CORE__FERNET_KEY": f"{new},{old}"})
    assert recorded["fernet_key"] == fingerprints.fingerprint(new)
    rotation.record({"AIRFLOW__CORE__FERNET_KEY": f"{new},{old}"})  # again: already recorded, no change
    assert recorded["fernet_key"] == fingerprints.fingerprint(new)
