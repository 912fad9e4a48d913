"""The configuration contract: the settings every component needs and where they come from.

A setting is read the way Airflow reads it (`AIRFLOW__SECTION__KEY`), with three more sources:
`AIRFLOW__SECTION__KEY_CMD` and `AIRFLOW__SECTION__KEY_SECRET` (Airflow's own, resolved by
Airflow itself) and `AIRFLOW__SECTION__KEY_FILE` (Docker/Compose secrets and mounted files),
which this module resolves into the plain variable before Airflow starts, the way
docker-library's `file_env` does. Values are never printed.

The connection URLs may also leave their password out and take it from its own variable
(`AIRFLOW_STACK_DB_PASSWORD`, `AIRFLOW_STACK_REDIS_PASSWORD`), and Flower's basic auth its
password (`AIRFLOW_STACK_FLOWER_PASSWORD`): that is how ECS injects a Secrets Manager secret,
which can only fill a whole variable. The password is URL-quoted here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from airflow_stack.core.errors import StackError


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    description: str
    secret: bool = False

    @property
    def env(self) -> str:
        return f"AIRFLOW__{self.section.upper()}__{self.key.upper()}"

    @property
    def ini(self) -> str:
        return f"[{self.section}] {self.key}"


FERNET_KEY = Setting("core", "fernet_key", "encrypts connections and variables in the DB", secret=True)
JWT_SECRET = Setting("api_auth", "jwt_secret", "signs the tokens workers present to the api-server", secret=True)
API_SECRET_KEY = Setting("api", "secret_key", "signs sessions and log-server requests", secret=True)
SQL_ALCHEMY_CONN = Setting("database", "sql_alchemy_conn", "metadata database URL", secret=True)
BROKER_URL = Setting("celery", "broker_url", "Celery broker (Redis) URL", secret=True)
RESULT_BACKEND = Setting("celery", "result_backend", "Celery result backend URL", secret=True)
EXECUTION_API_SERVER_URL = Setting(
    "core", "execution_api_server_url", "where workers reach the api-server's execution API"
)

CONTRACT: tuple[Setting, ...] = (
    FERNET_KEY,
    JWT_SECRET,
    API_SECRET_KEY,
    SQL_ALCHEMY_CONN,
    BROKER_URL,
    RESULT_BACKEND,
    EXECUTION_API_SERVER_URL,
)


def resolve_file_twins(env: MutableMapping[str, str]) -> None:
    """Replace every `AIRFLOW__S__K_FILE` with `AIRFLOW__S__K` holding the file's content."""
    for name in [n for n in env if n.startswith("AIRFLOW__") and n.endswith("_FILE")]:
        target = name[: -len("_FILE")]
        if env.get(target):
            raise StackError(
                f"both {target} and {name} are set; only one source is allowed",
                setting=target,
                fix=f"unset one of {target} and {name}",
            )
        path = Path(env[name])
        try:
            env[target] = path.read_text().strip()
        except OSError as exc:
            raise StackError(
                f"{name} points at {path}, which cannot be read ({exc.strerror})",
                setting=target,
                fix=f"mount the file at {path} readable by uid {os.getuid()}, or set {target} instead",
            ) from None
        del env[name]


def is_provided(setting: Setting, env: MutableMapping[str, str]) -> bool:
    """True when the setting has a value in any form Airflow will resolve."""
    return any(env.get(setting.env + suffix) for suffix in ("", "_CMD", "_SECRET"))


def value(setting: Setting, env: MutableMapping[str, str]) -> str | None:
    """The plain value, or None when absent or given only as `_CMD` / `_SECRET`."""
    return env.get(setting.env) or None


def positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number above 0 from `env[name]` (unset or empty: `default`), or a refusal naming it."""
    raw = env.get(name) or str(default)
    if not raw.isdigit() or int(raw) <= 0:
        raise StackError(f"{name}={raw!r} is not a positive whole number", setting=name, fix=f"set it to e.g. {default}")
    return int(raw)


def boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    """true/false (also 1/0, yes/no; unset or empty: `default`) from `env[name]`, or a refusal naming it."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise StackError(f"{name}={raw!r} is neither true nor false", setting=name, fix="set it to true or false")


# The log servers of the worker and the triggerer (`airflow serve-logs`, ports 8793/8794) serve
# the logs of running and deferred tasks to the api-server. Where every component shares the
# logs folder they may be switched off (false), saving a process in each; the UI then names the
# missing log server among a running task's log sources.
SERVE_LOGS = "AIRFLOW_STACK_SERVE_LOGS"


# The variable holding a password, and the URL settings (and schemes) it completes.
DB_PASSWORD = "AIRFLOW_STACK_DB_PASSWORD"
REDIS_PASSWORD = "AIRFLOW_STACK_REDIS_PASSWORD"
FLOWER_PASSWORD = "AIRFLOW_STACK_FLOWER_PASSWORD"
FLOWER_USERNAME = "AIRFLOW_STACK_FLOWER_USERNAME"
FLOWER_BASIC_AUTH = "AIRFLOW__CELERY__FLOWER_BASIC_AUTH"
_PASSWORD_TARGETS = {
    DB_PASSWORD: ((SQL_ALCHEMY_CONN, RESULT_BACKEND), "postgres"),
    REDIS_PASSWORD: ((BROKER_URL, RESULT_BACKEND), "redis"),
}


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = quote(unquote(parts.username), safe="") if parts.username else ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def inject_passwords(env: MutableMapping[str, str]) -> None:
    """Put `AIRFLOW_STACK_DB_PASSWORD` / `AIRFLOW_STACK_REDIS_PASSWORD` into the URLs that
    connect to PostgreSQL / Redis and carry no password; refuse a URL that already has one.
    `AIRFLOW_STACK_FLOWER_PASSWORD` becomes Flower's basic auth (user `AIRFLOW_STACK_FLOWER_USERNAME`)."""
    if password := env.get(FLOWER_PASSWORD):
        if env.get(FLOWER_BASIC_AUTH):
            raise StackError(
                f"{FLOWER_BASIC_AUTH} and {FLOWER_PASSWORD} are both set; only one source is allowed",
                setting=FLOWER_BASIC_AUTH,
                fix=f"unset one of {FLOWER_BASIC_AUTH} and {FLOWER_PASSWORD}",
            )
        env[FLOWER_BASIC_AUTH] = f"{env.get(FLOWER_USERNAME) or 'flower'}:{password}"
    for variable, (targets, scheme_part) in _PASSWORD_TARGETS.items():
        password = env.get(variable)
        if not password:
            continue
        for setting in targets:
            url = env.get(setting.env)
            parts = urlsplit(url) if url else None
            if not parts or scheme_part not in parts.scheme:
                continue
            if parts.password is not None:
                raise StackError(
                    f"{setting.env} has a password and {variable} is set too; only one source is allowed",
                    setting=setting.env,
                    fix=f"remove the password from {setting.env} (user@host) or unset {variable}",
                )
            env[setting.env] = _with_password(url, password)
