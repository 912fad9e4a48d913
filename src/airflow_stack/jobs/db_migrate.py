"""The one-shot `db-migrate` job: record the shared secrets' fingerprints, migrate the metadata
database and create the admin user.

Every step is idempotent: running db-migrate again on an existing database is harmless. The
first run records the fingerprints; a later run with a different secret refuses before it
touches anything (changing a secret on purpose: docs/secrets.md "Rotating secrets"). The admin
password never appears on a command line: the user is created in-process with Airflow's own
`users create` command function.
"""

from __future__ import annotations

import subprocess
from argparse import Namespace
from collections.abc import Mapping

from airflow_stack.checks import fingerprints
from airflow_stack.core import metadb, settings
from airflow_stack.core.errors import StackError, docs, log

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def record_fingerprints(env: Mapping[str, str]) -> None:
    mine = fingerprints.of_environment(env)
    accepted = set(settings.ACCEPT_NEW_SECRETS.read(env))
    conn = metadb.connect(env)
    try:
        recorded = metadb.read_fingerprints(conn)
        changed = [n for n in mine if n in recorded and recorded[n] != mine[n]]
        if "fernet_key" in changed:
            fingerprints.compare(
                mine,
                recorded,
                "the value recorded by an earlier db-migrate",
                fix="restore the previous AIRFLOW__CORE__FERNET_KEY (connections and variables are encrypted "
                "with it); to change it, run `make rotate-fernet-key`",
            )
        refused = {n: v for n, v in mine.items() if n in changed and n not in accepted}
        if refused:
            fingerprints.compare(
                refused,
                recorded,
                "the value recorded by an earlier db-migrate",
                fix=f"restore the previous value; to change it on purpose, run db-migrate once with "
                f"{settings.ACCEPT_NEW_SECRETS.name}={','.join(refused)} ({docs('secrets.md#rotating-secrets')})",
            )
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
    username = settings.ADMIN_USERNAME.read(env)
    if not username:
        log(f"{settings.ADMIN_USERNAME.name} is not set; no admin user created")
        return
    if settings.AUTH_MANAGER.read(env) != FAB_AUTH_MANAGER:
        log("the auth manager is not FAB; no admin user created")
        return
    password = settings.ADMIN_PASSWORD.read(env)
    if not password:
        raise StackError(
            f"{settings.ADMIN_PASSWORD.name} is empty, so admin user {username!r} cannot be created",
            setting=settings.ADMIN_PASSWORD.name,
            fix=f"set a password (make secrets generates one into .env), or unset {settings.ADMIN_USERNAME.name}",
        )
    log(f"ensuring admin user {username!r} exists")
    from airflow.providers.fab.auth_manager.cli_commands.user_command import users_create

    # `airflow users create`, called in-process with the password in memory (on its command line,
    # `ps` would show it). An existing user is reported ("already exists") and left as it is.
    arguments = Namespace(
        role="Admin",
        username=username,
        password=password,
        use_random_password=False,
        email=settings.ADMIN_EMAIL.read(env) or f"{username}@example.invalid",
        firstname=settings.ADMIN_FIRSTNAME.read(env),
        lastname=settings.ADMIN_LASTNAME.read(env),
    )
    try:
        users_create(arguments)
    except SystemExit as exc:
        raise StackError(
            f"creating admin user {username!r} failed: {exc}",
            setting=settings.ADMIN_USERNAME.name,
            fix="check the admin settings in .env (or the environment)",
        ) from None


def run(env: Mapping[str, str]) -> None:
    record_fingerprints(env)
    migrate()
    create_admin(env)
    log("db-migrate finished")
