"""Bounded waits for the metadata database, the Celery broker and the api-server's execution API.

Each wait retries while the service is not yet up and fails fast on an answer that will not
change by waiting (wrong password, unknown database, an HTTP 4xx). All name where they waited.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from airflow_stack.core import metadb
from airflow_stack.core.errors import StackError, docs

_PERMANENT_PG_ERRORS = ("password authentication failed", "does not exist", "no pg_hba.conf entry")
# libpq's refusals of the server's certificate (sslmode=verify-ca / verify-full): waiting will not help.
_PG_CERTIFICATE_ERRORS = ("certificate verify failed", "does not match host name", "root certificate file")
_PERMANENT_REDIS_ERRORS = ("WRONGPASS", "NOAUTH", "invalid password", "invalid username-password")


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    path: str

    @classmethod
    def parse(cls, url: str, default_port: int) -> Endpoint:
        parts = urlsplit(url)
        return cls(
            scheme=parts.scheme,
            host=parts.hostname or "localhost",
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            path=parts.path.lstrip("/"),
        )

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _has_marker(markers: tuple[str, ...]) -> Callable[[Exception], bool]:
    return lambda exc: any(marker in str(exc) for marker in markers)


def _retry(
    what: str,
    setting: str,
    endpoint: Endpoint | str,
    attempt: Callable[[], None],
    timeout: float,
    permanent: Callable[[Exception], bool],
    *,
    refused_fix: str = "check the user, password and database name in that URL",
    unreachable_fix: str | None = None,
    fix_for: Callable[[Exception], str | None] = lambda exc: None,
) -> None:
    """Call `attempt` until it returns, an exception is `permanent`, or `timeout` s pass; a
    permanent error's fix is `fix_for(exc)`, or `refused_fix` when that gives none."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    while True:
        try:
            attempt()
            return
        except Exception as exc:  # noqa: BLE001 - drivers raise many kinds; each is reported
            last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if permanent(exc):
                raise StackError(
                    f"{what} at {endpoint} refused the connection: {last_error}",
                    setting=setting,
                    fix=fix_for(exc) or refused_fix,
                ) from None
        if time.monotonic() >= deadline:
            raise StackError(
                f"{what} at {endpoint} did not answer within {timeout:.0f} s (last error: {last_error})",
                setting=setting,
                fix=unreachable_fix
                or f"start {what} or correct the host and port; raise AIRFLOW_STACK_WAIT_TIMEOUT for slow starts",
            )
        time.sleep(1)


def wait_for_postgres(url: str, setting: str, timeout: float) -> Endpoint:
    """Wait until PostgreSQL at `url` (an SQLAlchemy or libpq URL) accepts a query, connecting as
    Airflow will: with the URL's parameters too (sslmode, sslrootcert)."""
    import psycopg2  # the postgres provider's driver; imported late so --help stays fast

    endpoint = Endpoint.parse(url, 5432)

    def attempt() -> None:
        conn = psycopg2.connect(metadb.libpq_url(url), connect_timeout=3)
        try:
            conn.cursor().execute("SELECT 1")
        finally:
            conn.close()

    def certificate_fix(exc: Exception) -> str | None:
        if not _has_marker(_PG_CERTIFICATE_ERRORS)(exc):
            return None
        return (
            f"the server's certificate did not verify: the URL's host must be the name in the certificate (on "
            f"AWS the RDS endpoint, not an address or another alias), and sslrootcert in {setting} must name the "
            "CA that signed it (on AWS the RDS CA bundle built into the image: make -C deploy/aws rds-ca, then "
            f"make build; {docs('aws.md#the-database-connection')})"
        )

    permanent = _has_marker(_PERMANENT_PG_ERRORS + _PG_CERTIFICATE_ERRORS)
    _retry("PostgreSQL", setting, endpoint, attempt, timeout, permanent, fix_for=certificate_fix)
    return endpoint


def wait_for_redis(url: str, setting: str, timeout: float) -> Endpoint:
    """Wait until Redis at `url` answers PING (with the URL's credentials)."""
    import redis

    endpoint = Endpoint.parse(url, 6379)

    def attempt() -> None:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        finally:
            client.close()

    _retry("Redis", setting, endpoint, attempt, timeout, _has_marker(_PERMANENT_REDIS_ERRORS))
    return endpoint


def wait_for_execution_api(base_url: str, setting: str, timeout: float) -> str:
    """Wait until the api-server at `base_url` answers GET /execution/health."""
    endpoint = f"{base_url}/execution/"

    def attempt() -> None:
        with urllib.request.urlopen(f"{base_url}/execution/health", timeout=5):
            pass

    _retry(
        "the api-server's execution API",
        setting,
        endpoint,
        attempt,
        timeout,
        lambda exc: isinstance(exc, urllib.error.HTTPError) and exc.code < 500,
        refused_fix="point it at an api-server running this image (it serves /execution and /airflow-stack)",
        unreachable_fix="start the api-server or correct the URL; workers must reach it to run tasks",
    )
    return endpoint
