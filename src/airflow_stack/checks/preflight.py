"""The checks a component passes before it runs, in order (the waits within one deadline):

1. required settings present, the fernet key valid, the JWT secret and API secret key long
   and not a known default, no empty or well-known password (unless the development flag), the
   CA file a verifying database URL names present;
2. its database and broker reachable (a worker: also the api-server's execution API);
3. its shared secrets' fingerprints equal to those `db-migrate` recorded in the metadata DB
   (a worker: to the api-server's); an Airflow component's metadata DB migrated to its Airflow
   (checks.migrations, in place of Airflow's own check);
4. with S3 remote logging on, a probe object written to and deleted from the log prefix.

What a component needs comes from its fields in the component table (core.components). The
first group needs only the settings (`check_settings`), the others the services it depends on
(`check_dependencies`): a worker imports its modules while it waits for those (cli).
Every refusal names the setting and the fix; no secret value is ever printed.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
import urllib.request
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from airflow_stack.checks import fingerprints, migrations, waiting
from airflow_stack.core import metadb, settings
from airflow_stack.core.components import Component
from airflow_stack.core.errors import StackError, docs, log
from airflow_stack.ops import s3logs

MIN_SECRET_LENGTH = 32
# Values seen as defaults in quick starts, tutorials and old Airflow releases.
WELL_KNOWN = frozenset(
    {"airflow", "admin", "password", "postgres", "redis", "flower", "changeme", "change-me", "secret",
     "temporary_key", "test", "123456", "12345678", "letmein", "default", "root", "guest"}
)  # fmt: skip


def weak_allowed(env: Mapping[str, str]) -> bool:
    return settings.ALLOW_WEAK_SECRETS.read(env)


def check_required(component: Component, env: Mapping[str, str]) -> None:
    """Refuse when a setting the component needs is missing or malformed."""
    missing = [s for s in component.required if not settings.is_provided(s, env)]
    if missing:
        names = ", ".join(s.name for s in missing)
        raise StackError(
            f"{component.name} cannot start: {len(missing)} required setting(s) missing: {names}",
            setting=", ".join(s.ini for s in missing),
            fix="set them in the environment (or as *_FILE, *_CMD, *_SECRET); locally `make secrets` writes .env",
        )
    fernet = settings.FERNET_KEY.raw(env)
    if settings.FERNET_KEY in component.required and fernet is not None:
        check_fernet_key(fernet)
    for setting in (settings.JWT_SECRET, settings.API_SECRET_KEY):
        value = setting.raw(env)
        if setting in component.required and value is not None and not weak_allowed(env):
            check_secret_strength(setting, value)


def check_fernet_key(keys: str) -> None:
    """A Fernet key is 32 bytes, url-safe base64; a comma-separated list is allowed for rotation."""
    for position, key in enumerate(keys.split(","), start=1):
        key = key.strip()
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise StackError(
                f"the fernet key (entry {position} of the list) is not a valid Fernet key",
                setting=settings.FERNET_KEY.name,
                fix="generate one with `make fernet-key` (32 url-safe base64-encoded bytes)",
            )


def weakness(value: str, min_length: int = 0) -> str | None:
    """What makes a password or secret guessable, or None."""
    if not value:
        return "empty"
    if value.lower() in WELL_KNOWN:
        return "a well-known default"
    if len(value) < min_length:
        return f"shorter than {min_length} characters"
    return None


def check_secret_strength(setting: settings.Setting, value: str) -> None:
    if problem := weakness(value, MIN_SECRET_LENGTH):
        raise StackError(
            f"{setting.name} is {problem}: anyone could forge tokens or sessions",
            setting=setting.ini,
            fix=f"use a random value of at least {MIN_SECRET_LENGTH} characters "
            "(`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`; make secrets generates one)",
        )


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    password = urlsplit(url).password
    return unquote(password) if password else ""


def database(component: Component, env: Mapping[str, str]) -> tuple[settings.Setting, str] | None:
    """The setting and URL of the PostgreSQL database the component waits for (its `database`
    field): the Celery result backend when that is a database (`db+...`), or the metadata DB."""
    if not component.database:
        return None
    if component.database == "result-backend":
        backend = settings.RESULT_BACKEND.raw(env) or ""
        if backend.startswith("db+"):
            return settings.RESULT_BACKEND, backend[len("db+") :]
    url = settings.SQL_ALCHEMY_CONN.raw(env)
    return (settings.SQL_ALCHEMY_CONN, url) if url else None


def _basic_auth_passwords(value: str) -> list[str]:
    return [pair.partition(":")[2] for pair in value.split(",") if pair]


def _plain_passwords(setting: settings.Setting, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(where, password) for a setting of a component's `passwords` field: each of Flower's
    basic-auth pairs, or the admin password when an admin user is to be created."""
    if setting is settings.FLOWER_BASIC_AUTH:
        return [(f"the password in {setting.name}", p) for p in _basic_auth_passwords(setting.raw(env) or "")]
    if setting is settings.ADMIN_PASSWORD and not settings.ADMIN_USERNAME.raw(env):
        return []
    return [(setting.name, setting.raw(env) or "")]


def passwords_to_check(component: Component, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(setting, password) pairs this component uses: DB, broker, and its `passwords` field."""
    found = []
    if db := database(component, env):
        db_setting, url = db
        found.append((f"the password in {db_setting.name}", _url_password(url)))
    if component.waits_for_broker:
        password = _url_password(settings.BROKER_URL.raw(env))
        if password is not None:
            found.append((f"the password in {settings.BROKER_URL.name}", password))
    for setting in component.passwords:
        found += _plain_passwords(setting, env)
    return found


def check_passwords(component: Component, env: Mapping[str, str]) -> None:
    if weak_allowed(env):
        return
    for where, password in passwords_to_check(component, env):
        if problem := weakness(password):
            raise StackError(
                f"{where} is {problem}",
                setting=where.removeprefix("the password in "),
                fix="use a random password (make secrets generates them into .env); "
                f"for a throwaway development stack only, set {settings.ALLOW_WEAK_SECRETS.name}=true",
            )


def _unusable(path: Path) -> str | None:
    if not path.exists():
        return "does not exist in this container"
    if not os.access(path, os.R_OK):
        return "cannot be read by this user"
    if path.is_file() and path.stat().st_size == 0:
        return "is empty"
    return None


def check_database_ca(component: Component, env: Mapping[str, str]) -> None:
    """A database URL with sslmode=verify-ca or verify-full needs its CA file (sslrootcert, or
    libpq's PGSSLROOTCERT and ~/.postgresql/root.crt), unless it asks for the system's roots."""
    if not (db := database(component, env)):
        return
    db_setting, url = db
    query = {name: values[-1] for name, values in parse_qs(urlsplit(url).query).items()}
    mode = query.get("sslmode", env.get("PGSSLMODE", ""))
    if mode not in ("verify-ca", "verify-full"):
        return
    root = query.get("sslrootcert") or env.get("PGSSLROOTCERT") or str(Path.home() / ".postgresql" / "root.crt")
    if root == "system":
        return
    if problem := _unusable(Path(root)):
        raise StackError(
            f"{db_setting.name} asks for sslmode={mode}, and the CA file {root} {problem}",
            setting=db_setting.name,
            fix="on AWS, build the image with the RDS CA bundle (make -C deploy/aws rds-ca, then make build and "
            f"make -C deploy/aws push; {docs('aws.md#the-database-connection')}); elsewhere set sslrootcert= to a "
            "CA file the container holds",
        )


class Deadline:
    """One time budget shared by every wait of a preflight."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(1.0, self.end - time.monotonic())


def wait_for_dependencies(component: Component, env: Mapping[str, str]) -> None:
    """Wait for the database, the broker and (a worker) the execution API, all within one deadline."""
    deadline = Deadline(settings.WAIT_TIMEOUT.read(env))
    if db := database(component, env):
        db_setting, url = db
        endpoint = waiting.wait_for_postgres(url, db_setting.name, deadline.remaining())
        log(f"PostgreSQL at {endpoint} is ready")
    if component.waits_for_broker:
        url = settings.BROKER_URL.raw(env)
        if url:
            endpoint = waiting.wait_for_redis(url, settings.BROKER_URL.name, deadline.remaining())
            log(f"Redis at {endpoint} is ready")
    if component.waits_for_execution_api and settings.EXECUTION_API_SERVER_URL.raw(env):
        setting = settings.EXECUTION_API_SERVER_URL.name
        endpoint = waiting.wait_for_execution_api(api_server_base(env), setting, deadline.remaining())
        log(f"the api-server's execution API at {endpoint} answers")


def api_server_base(env: Mapping[str, str]) -> str:
    url = (settings.EXECUTION_API_SERVER_URL.raw(env) or "").rstrip("/")
    return url.removesuffix("/execution")


def fetch_api_server_fingerprints(env: Mapping[str, str]) -> dict[str, str]:
    """The fingerprints the api-server publishes (its execution API has answered already)."""
    base = api_server_base(env)
    try:
        with urllib.request.urlopen(f"{base}/airflow-stack/fingerprints", timeout=10) as response:
            return json.load(response)
    except (OSError, ValueError) as exc:
        raise StackError(
            f"the api-server at {base} did not publish its fingerprints at /airflow-stack/fingerprints ({exc})",
            setting=settings.EXECUTION_API_SERVER_URL.name,
            fix="point it at an api-server running this image (it serves /execution and /airflow-stack)",
        ) from None


def check_fingerprints(component: Component, env: Mapping[str, str], connection: Callable[[], object]) -> None:
    """The shared secrets' fingerprints against the api-server's or those db-migrate recorded in
    the metadata DB (`connection()`: the start-up checks' connection to it)."""
    mine = {
        name: value
        for name, value in fingerprints.of_environment(env).items()
        if fingerprints.SHARED[name] in component.required
    }
    if not mine or component.fingerprints in ("", "records"):
        return  # db-migrate records them (jobs.db_migrate); Flower shares none
    log(f"secret fingerprints: {fingerprints.describe(mine)}")
    if component.fingerprints == "api-server-endpoint":
        reference = fetch_api_server_fingerprints(env)
        fingerprints.compare(
            mine,
            reference,
            "the api-server's",
            fix="give every container the same value "
            "(locally: the one in .env; on ECS: the same Secrets Manager secret)",
        )
        return
    recorded = metadb.read_fingerprints(connection())
    if not recorded:
        raise StackError(
            "the metadata DB holds no fingerprints of the shared secrets yet",
            setting=metadb.FINGERPRINT_TABLE,
            fix="run db-migrate first (`airflow-stack run db-migrate`; compose does it before every component)",
        )
    fingerprints.compare(
        mine,
        recorded,
        "the value recorded by db-migrate",
        fix="give every container the same value (locally: the one in .env; on ECS: the same Secrets Manager "
        f"secret); to change it on purpose, follow {docs('secrets.md#rotating-secrets')}",
    )


def check_settings(component: Component, env: Mapping[str, str]) -> None:
    """The checks that need nothing but the settings: a refusal comes at once."""
    check_required(component, env)
    check_passwords(component, env)
    check_database_ca(component, env)


def check_dependencies(component: Component, env: MutableMapping[str, str]) -> None:
    """The checks that wait for, or ask, the services the component depends on (standard library,
    psycopg2 and redis only: safe in a thread while another imports Airflow)."""
    wait_for_dependencies(component, env)
    with metadb.shared_connection(env) as connection:  # one connection for the checks that read it
        check_fingerprints(component, env, connection)
        if component.checks_migrations:
            log(migrations.check(env, connection))


def check_remote_logs(component: Component, env: Mapping[str, str]) -> None:
    if component.task_logs and s3logs.enabled(env):
        log(f"remote logging: wrote and deleted {s3logs.probe(env)}")


def run(component: Component, env: MutableMapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    check_settings(component, env)
    check_dependencies(component, env)
    check_remote_logs(component, env)
