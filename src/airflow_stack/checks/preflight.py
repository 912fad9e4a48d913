"""The checks a component passes before it is exec'd, in order (the waits within one deadline):

1. required settings present, the fernet key valid, the JWT secret and API secret key long
   and not a known default, no empty or well-known password (unless the development flag);
2. its database and broker reachable (a worker: also the api-server's execution API);
3. its shared secrets' fingerprints equal to those `init` recorded in the metadata DB (a
   worker: to the api-server's);
4. with S3 remote logging on, a probe object written to and deleted from the log prefix.

Every refusal names the setting and the fix; no secret value is ever printed.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
import urllib.request
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from airflow_stack.checks import fingerprints, waiting
from airflow_stack.core import metadb, settings
from airflow_stack.ops import s3logs
from airflow_stack.core.components import Component
from airflow_stack.core.errors import StackError, log

DEFAULT_WAIT_TIMEOUT = 45.0
MIN_SECRET_LENGTH = 32
WEAK_FLAG = "AIRFLOW_STACK_ALLOW_WEAK_SECRETS"
# Values seen as defaults in quick starts, tutorials and old Airflow releases.
WELL_KNOWN = frozenset(
    {"airflow", "admin", "password", "postgres", "redis", "flower", "changeme", "change-me", "secret",
     "temporary_key", "test", "123456", "12345678", "letmein", "default", "root", "guest"}
)  # fmt: skip


def weak_allowed(env: Mapping[str, str]) -> bool:
    return env.get(WEAK_FLAG, "").lower() in ("1", "true", "yes")


def check_required(component: Component, env: Mapping[str, str]) -> None:
    """Refuse when a setting the component needs is missing or malformed."""
    missing = [s for s in component.required if not settings.is_provided(s, env)]
    if missing:
        names = ", ".join(s.env for s in missing)
        raise StackError(
            f"{component.name} cannot start: {len(missing)} required setting(s) missing: {names}",
            setting=", ".join(s.ini for s in missing),
            fix="set them in the environment (or as *_FILE, *_CMD, *_SECRET); locally `make init` writes .env",
        )
    fernet = settings.value(settings.FERNET_KEY, env)
    if settings.FERNET_KEY in component.required and fernet is not None:
        check_fernet_key(fernet)
    for setting in (settings.JWT_SECRET, settings.API_SECRET_KEY):
        value = settings.value(setting, env)
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
                setting=settings.FERNET_KEY.env,
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
            f"{setting.env} is {problem}: anyone could forge tokens or sessions",
            setting=setting.ini,
            fix=f"use a random value of at least {MIN_SECRET_LENGTH} characters "
            "(`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`; make init generates one)",
        )


def _url_password(url: str | None) -> str | None:
    if not url:
        return None
    password = urlsplit(url).password
    return unquote(password) if password else ""


def database(component: Component, env: Mapping[str, str]) -> tuple[settings.Setting, str] | None:
    """The setting and URL of the PostgreSQL database the component uses: for a worker the
    Celery result backend when it is a database (`db+...`), otherwise the metadata DB."""
    if component.name == "worker":
        backend = settings.value(settings.RESULT_BACKEND, env) or ""
        if backend.startswith("db+"):
            return settings.RESULT_BACKEND, backend[len("db+") :]
    url = settings.value(settings.SQL_ALCHEMY_CONN, env)
    return (settings.SQL_ALCHEMY_CONN, url) if url else None


def passwords_to_check(component: Component, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(setting, password) pairs this component uses: DB, broker, Flower basic auth, admin."""
    found = []
    if component.waits_for_db and (db := database(component, env)):
        db_setting, url = db
        found.append((f"the password in {db_setting.env}", _url_password(url)))
    if component.waits_for_broker:
        password = _url_password(settings.value(settings.BROKER_URL, env))
        if password is not None:
            found.append((f"the password in {settings.BROKER_URL.env}", password))
    if component.name == "flower":
        for pair in filter(None, env.get("AIRFLOW__CELERY__FLOWER_BASIC_AUTH", "").split(",")):
            found.append(("the password in AIRFLOW__CELERY__FLOWER_BASIC_AUTH", pair.partition(":")[2]))
    if component.name == "init" and env.get("AIRFLOW_ADMIN_USERNAME"):
        found.append(("AIRFLOW_ADMIN_PASSWORD", env.get("AIRFLOW_ADMIN_PASSWORD", "")))
    return found


def check_passwords(component: Component, env: Mapping[str, str]) -> None:
    if weak_allowed(env):
        return
    for where, password in passwords_to_check(component, env):
        if problem := weakness(password):
            raise StackError(
                f"{where} is {problem}",
                setting=where.removeprefix("the password in "),
                fix="use a random password (make init generates them into .env); "
                f"for a throwaway development stack only, set {WEAK_FLAG}=true",
            )


class Deadline:
    """One time budget shared by every wait of a preflight."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(1.0, self.end - time.monotonic())


def wait_timeout(env: Mapping[str, str]) -> float:
    raw = env.get("AIRFLOW_STACK_WAIT_TIMEOUT", str(DEFAULT_WAIT_TIMEOUT))
    try:
        timeout = float(raw)
    except ValueError:
        timeout = -1.0
    if timeout <= 0:
        raise StackError(
            f"AIRFLOW_STACK_WAIT_TIMEOUT={raw!r} is not a positive number of seconds",
            setting="AIRFLOW_STACK_WAIT_TIMEOUT",
            fix="set it to e.g. 45, or unset it",
        )
    return timeout


def wait_for_dependencies(component: Component, env: Mapping[str, str]) -> None:
    """Wait for the database, the broker and (a worker) the execution API, all within one deadline."""
    deadline = Deadline(wait_timeout(env))
    if component.waits_for_db and (db := database(component, env)):
        db_setting, url = db
        endpoint = waiting.wait_for_postgres(url, db_setting.env, deadline.remaining())
        log(f"PostgreSQL at {endpoint} is ready")
    if component.waits_for_broker:
        url = settings.value(settings.BROKER_URL, env)
        if url:
            endpoint = waiting.wait_for_redis(url, settings.BROKER_URL.env, deadline.remaining())
            log(f"Redis at {endpoint} is ready")
    if component.name == "worker" and settings.value(settings.EXECUTION_API_SERVER_URL, env):
        setting = settings.EXECUTION_API_SERVER_URL.env
        endpoint = waiting.wait_for_execution_api(api_server_base(env), setting, deadline.remaining())
        log(f"the api-server's execution API at {endpoint} answers")


def api_server_base(env: Mapping[str, str]) -> str:
    url = (settings.value(settings.EXECUTION_API_SERVER_URL, env) or "").rstrip("/")
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
            setting=settings.EXECUTION_API_SERVER_URL.env,
            fix="point it at an api-server running this image (it serves /execution and /airflow-stack)",
        ) from None


def check_fingerprints(component: Component, env: Mapping[str, str]) -> None:
    mine = {
        name: value
        for name, value in fingerprints.of_environment(env).items()
        if fingerprints.SHARED[name] in component.required
    }
    if not mine or component.name == "init":
        return  # init records them (initdb); flower shares none
    log(f"secret fingerprints: {fingerprints.describe(mine)}")
    if component.name == "worker":
        reference = fetch_api_server_fingerprints(env)
        fingerprints.compare(
            mine, reference, "the api-server's",
            fix="give every container the same value (locally: the one in .env; on ECS: the same Secrets Manager secret)",
        )  # fmt: skip
        return
    conn = metadb.connect(env)
    try:
        recorded = metadb.read_fingerprints(conn)
    finally:
        conn.close()
    if not recorded:
        raise StackError(
            "the metadata DB holds no fingerprints of the shared secrets yet",
            setting=metadb.FINGERPRINT_TABLE,
            fix="run init first (`airflow-stack run init`; compose does it before every component)",
        )
    fingerprints.compare(
        mine, recorded, "the value recorded by init",
        fix="give every container the same value (locally: the one in .env; on ECS: the same Secrets Manager "
        "secret); to change it on purpose, follow README 'Rotating secrets'",
    )  # fmt: skip


def run(component: Component, env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    check_required(component, env)
    check_passwords(component, env)
    wait_for_dependencies(component, env)
    check_fingerprints(component, env)
    if component.name in s3logs.COMPONENTS and s3logs.enabled(env):
        log(f"remote logging: wrote and deleted {s3logs.probe(env)}")
