"""The one-shot `init` job: record the shared secrets' fingerprints, migrate the metadata
database and create the admin user.

Every step is idempotent: running init again on an existing database is harmless. The first
init records the fingerprints; a later init with a different secret refuses before it
touches anything (changing a secret on purpose: README "Rotating secrets").
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

from airflow_stack.checks import fingerprints
from airflow_stack.core import metadb
from airflow_stack.core.errors import StackError, log

ACCEPT_FLAG = "AIRFLOW_STACK_ACCEPT_NEW_SECRETS"

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def record_fingerprints(env: Mapping[str, str]) -> None:
    mine = fingerprints.of_environment(env)
    accepted = {name.strip() for name in env.get(ACCEPT_FLAG, "").split(",") if name.strip()}
    conn = metadb.connect(env)
    try:
        recorded = metadb.read_fingerprints(conn)
        changed = [n for n in mine if n in recorded and recorded[n] != mine[n]]
        if "fernet_key" in changed:
            fingerprints.compare(
                mine, recorded, "the value recorded by an earlier init",
                fix="restore the previous AIRFLOW__CORE__FERNET_KEY (connections and variables are encrypted "
                "with it); to change it, run `make rotate-fernet-key`",
            )  # fmt: skip
        refused = {n: v for n, v in mine.items() if n in changed and n not in accepted}
        if refused:
            fingerprints.compare(
                refused, recorded, "the value recorded by an earlier init",
                fix=f"restore the previous value; to change it on purpose, run init once with "
                f"{ACCEPT_FLAG}={','.join(refused)} (README 'Rotating secrets')",
            )  # fmt: skip
        new = {n: v for n, v in mine.items() if recorded.get(n) != v}
        if new:
            metadb.write_fingerprints(conn, new)
            log(f"recorded secret fingerprints: {fingerprints.describe(new)}")
        else:
            log(f"secret fingerprints match the recorded ones: {fingerprints.describe(mine)}")
    finally:
        conn.close()


def migrate() -> None:
    log("migrating the metadata database (airflow db migrate)")
    if subprocess.run(["airflow", "db", "migrate"]).returncode != 0:
        raise StackError(
            "`airflow db migrate` failed (its output is above)",
            setting="AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            fix="check the database URL and that the database user may create tables",
        )


def create_admin(env: Mapping[str, str]) -> None:
    username = env.get("AIRFLOW_ADMIN_USERNAME", "")
    password = env.get("AIRFLOW_ADMIN_PASSWORD", "")
    if not username:
        log("AIRFLOW_ADMIN_USERNAME is not set; no admin user created")
        return
    if env.get("AIRFLOW__CORE__AUTH_MANAGER", "") != FAB_AUTH_MANAGER:
        log("the auth manager is not FAB; no admin user created")
        return
    if not password:
        raise StackError(
            f"AIRFLOW_ADMIN_PASSWORD is empty, so admin user {username!r} cannot be created",
            setting="AIRFLOW_ADMIN_PASSWORD",
            fix="set a password (make init generates one into .env), or unset AIRFLOW_ADMIN_USERNAME",
        )
    log(f"ensuring admin user {username!r} exists")
    command = [
        "airflow", "users", "create", "--role", "Admin",
        "--username", username,
        "--password", password,
        "--email", env.get("AIRFLOW_ADMIN_EMAIL", f"{username}@example.invalid"),
        "--firstname", env.get("AIRFLOW_ADMIN_FIRSTNAME", "Airflow"),
        "--lastname", env.get("AIRFLOW_ADMIN_LASTNAME", "Admin"),
    ]  # fmt: skip
    # An existing user is reported ("already exists") and left as it is: exit code 0.
    if subprocess.run(command).returncode != 0:
        raise StackError(
            f"creating admin user {username!r} failed (the output is above)",
            setting="AIRFLOW_ADMIN_USERNAME",
            fix="check the admin settings in .env",
        )


def run(env: Mapping[str, str]) -> None:
    record_fingerprints(env)
    migrate()
    create_admin(env)
    log("init finished")
