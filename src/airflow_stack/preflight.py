"""The checks a component passes before it is exec'd: required settings present and valid,
then its database and broker reachable within a bounded time."""

from __future__ import annotations

import base64
import binascii
import os
import sys
from collections.abc import Mapping

from airflow_stack import settings, waiting
from airflow_stack.components import Component
from airflow_stack.errors import StackError

DEFAULT_WAIT_TIMEOUT = 60.0


def log(message: str) -> None:
    print(f"airflow-stack: {message}", file=sys.stderr, flush=True)


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
            fix="set it to e.g. 60, or unset it",
        )
    return timeout


def wait_for_dependencies(component: Component, env: Mapping[str, str]) -> None:
    timeout = wait_timeout(env)
    if component.waits_for_db:
        db_setting = settings.SQL_ALCHEMY_CONN
        url = settings.value(db_setting, env)
        if component.name == "worker":
            backend = settings.value(settings.RESULT_BACKEND, env) or ""
            if backend.startswith("db+"):
                db_setting, url = settings.RESULT_BACKEND, backend[len("db+") :]
        if url:
            endpoint = waiting.wait_for_postgres(url, db_setting.env, timeout)
            log(f"PostgreSQL at {endpoint} is ready")
    if component.waits_for_broker:
        url = settings.value(settings.BROKER_URL, env)
        if url:
            endpoint = waiting.wait_for_redis(url, settings.BROKER_URL.env, timeout)
            log(f"Redis at {endpoint} is ready")


def run(component: Component, env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    check_required(component, env)
    wait_for_dependencies(component, env)
