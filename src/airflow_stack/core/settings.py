"""The settings registry: every environment variable the package reads, declared once.

Each `Setting` has its name, type, default, description and group, and says whether it is a
secret. One parser (`Setting.read`) turns a raw value into its type or refuses it with a
`StackError` that names the variable, what was wrong and the fix. Every secret has a `*_FILE`
twin (Docker/Compose secrets, mounted files), resolved here the way docker-library's
`file_env` does; setting both is a refusal. Airflow's own options (`AIRFLOW__SECTION__KEY`)
that the stack sets or checks are declared here too; Airflow itself also resolves their
`_CMD` and `_SECRET` forms. Values of secrets are never printed.

`airflow-stack settings` lists the registry with the current values (secrets masked), and
`docs/configuration.md` is generated from it (`make docs`); a unit test fails when they drift.

The connection URLs may leave their password out and take it from its own variable
(`AIRFLOW_STACK_DB_PASSWORD`, `AIRFLOW_STACK_REDIS_PASSWORD`), and Flower's basic auth its
password (`AIRFLOW_STACK_FLOWER_PASSWORD`): that is how ECS injects a Secrets Manager secret,
which can only fill a whole variable. The password is URL-quoted here.

Standard library only: the host tools read it too.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from airflow_stack.core.errors import StackError, docs

DOCS_PAGE = "docs/configuration.md"
PREFIX = "AIRFLOW_STACK_"


# -- types: each parses a raw string or raises ValueError saying what is expected ---------------
@dataclass(frozen=True)
class Kind:
    """A setting's type: `parse` turns the raw text into a value; `expects` says what is allowed."""

    expects: str
    parse: Callable[[str], Any]


def _text(raw: str) -> str:
    return raw


def _number(
    cast: Callable[[str], Any], minimum: float | None, maximum: float | None, *, above: float | None = None
) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = cast(raw.strip())
        except ValueError:
            raise ValueError("is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("is not a finite number")
        if above is not None and value <= above:
            raise ValueError(f"is not above {above:g}")
        if minimum is not None and value < minimum:
            raise ValueError(f"is below {minimum:g}")
        if maximum is not None and value > maximum:
            raise ValueError(f"is above {maximum:g}")
        return value

    return parse


def _whole(raw: str) -> int:
    if not raw.strip().isdigit():
        raise ValueError("is not a whole number")
    return int(raw)


def whole(minimum: int = 1, maximum: int | None = None) -> Kind:
    limits = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
    return Kind(f"a whole number {limits}", _number(_whole, minimum, maximum))


def seconds() -> Kind:
    return Kind("a number of seconds above 0", _number(float, None, None, above=0))


def positive_number(unit: str) -> Kind:
    return Kind(f"a number of {unit} above 0", _number(float, None, None, above=0))


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError("is neither true nor false")


def _url(schemes: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        parts = urlsplit(raw.strip())
        if parts.scheme not in schemes or not parts.netloc:
            raise ValueError(f"is not a {' or '.join(s + '://' for s in schemes)} URL")
        return raw.strip()

    return parse


def _choices(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in raw.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise ValueError(f"names {', '.join(map(repr, unknown))}, which is not one of {', '.join(allowed)}")
        return names

    return parse


TEXT = Kind("text", _text)
BOOLEAN = Kind("true or false (also 1/0, yes/no)", _boolean)
PATH = Kind("a path", Path)
HTTP_URL = Kind("an http:// or https:// URL", _url(("http", "https")))


def url(*schemes: str) -> Kind:
    return Kind(f"a {' or '.join(s + '://' for s in schemes)} URL", _url(schemes))


def _url_list(schemes: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    one = _url(schemes)
    return lambda raw: tuple(one(item) for item in raw.split(",") if item.strip())


def url_list(*schemes: str) -> Kind:
    return Kind(f"a comma-separated list of {' or '.join(s + '://' for s in schemes)} URLs", _url_list(schemes))


def choices(*allowed: str) -> Kind:
    return Kind(f"a comma-separated list of: {', '.join(allowed)}", _choices(allowed))


# -- the registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One environment variable: what it means, its type and default, and whether it is secret."""

    name: str
    group: str
    description: str
    kind: Kind = TEXT
    default: Any = None
    secret: bool = False
    set_by_stack: str = ""  # for Airflow options the stack sets: from what

    @property
    def file_twin(self) -> str | None:
        """The `*_FILE` variable that may hold a secret's value instead."""
        return f"{self.name}_FILE" if self.secret else None

    @property
    def is_airflow_option(self) -> bool:
        return self.name.startswith("AIRFLOW__")

    @property
    def section(self) -> str:
        return self.name.split("__")[1].lower()

    @property
    def key(self) -> str:
        return self.name.split("__", 2)[2].lower()

    @property
    def ini(self) -> str:
        """`[section] key` for Airflow options, the variable's name otherwise."""
        return f"[{self.section}] {self.key}" if self.is_airflow_option else self.name

    @property
    def anchor(self) -> str:
        return docs(f"configuration.md#{self.name.lower()}")

    def raw(self, env: Mapping[str, str]) -> str | None:
        """The variable's text; None when unset or empty (compose passes unset ones as empty)."""
        value = env.get(self.name)
        return value if value else None

    def set_default(self, env: MutableMapping[str, str], value: str) -> None:
        """Set an option the stack derives, unless it is given (an empty value counts as unset)."""
        if not self.raw(env):
            env[self.name] = value

    def read(self, env: Mapping[str, str]) -> Any:
        """The parsed value (the default when unset or empty), or a StackError naming it."""
        raw = self.raw(env)
        if raw is None:
            return self.default
        try:
            return self.kind.parse(raw)
        except ValueError as exc:
            shown = "(secret)" if self.secret else repr(raw)
            default = "" if self.default is None else f", or unset it for the default ({render(self.default)})"
            raise StackError(
                f"{self.name}={shown} {exc}",
                setting=self.name,
                fix=f"set it to {self.kind.expects}{default}; see {self.anchor}",
            ) from None


REGISTRY: dict[str, Setting] = {}


def _declare(*args: Any, **kwargs: Any) -> Setting:
    setting = Setting(*args, **kwargs)
    assert setting.name not in REGISTRY, setting.name
    REGISTRY[setting.name] = setting
    return setting


# Airflow's options that every component must agree on (the secrets contract).
_CONTRACT = "Airflow: the shared contract"
FERNET_KEY = _declare(
    "AIRFLOW__CORE__FERNET_KEY",
    _CONTRACT,
    "Encrypts connections and variables in the metadata DB. 32 url-safe base64 bytes (`make fernet-key`); "
    "`NEW,OLD` during a rotation. Identical in every container.",
    secret=True,
)
JWT_SECRET = _declare(
    "AIRFLOW__API_AUTH__JWT_SECRET",
    _CONTRACT,
    "Signs the tokens workers present to the api-server. At least 32 random characters; identical everywhere.",
    secret=True,
)
API_SECRET_KEY = _declare(
    "AIRFLOW__API__SECRET_KEY",
    _CONTRACT,
    "Signs sessions and log-server requests. At least 32 random characters; identical everywhere.",
    secret=True,
)
SQL_ALCHEMY_CONN = _declare(
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    _CONTRACT,
    "The metadata database URL (`postgresql+psycopg2://user[:password]@host:5432/db`); the password may come "
    "from AIRFLOW_STACK_DB_PASSWORD.",
    secret=True,
)
BROKER_URL = _declare(
    "AIRFLOW__CELERY__BROKER_URL",
    _CONTRACT,
    "The Celery broker (`redis://[:password]@host:6379/0`); the password may come from AIRFLOW_STACK_REDIS_PASSWORD.",
    secret=True,
)
RESULT_BACKEND = _declare(
    "AIRFLOW__CELERY__RESULT_BACKEND",
    _CONTRACT,
    "The Celery result backend: `db+postgresql://...` (the metadata DB, locally) or `redis://...` (on ECS).",
    secret=True,
)
EXECUTION_API_SERVER_URL = _declare(
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    _CONTRACT,
    "Where workers reach the api-server's execution API, e.g. `http://api-server:8080/execution/`.",
)
FLOWER_BASIC_AUTH = _declare(
    "AIRFLOW__CELERY__FLOWER_BASIC_AUTH",
    _CONTRACT,
    "Flower's basic auth, `user:password[,user:password]`; or set AIRFLOW_STACK_FLOWER_PASSWORD instead.",
    secret=True,
)

# Airflow's options the stack reads.
_AIRFLOW = "Airflow: options the stack reads"
WORKER_CONCURRENCY = _declare(
    "AIRFLOW__CELERY__WORKER_CONCURRENCY",
    _AIRFLOW,
    "Task slots per Celery worker; the monitor's DesiredWorkers divides the busy tasks by it.",
    whole(),
    16,
)
AUTH_MANAGER = _declare(
    "AIRFLOW__CORE__AUTH_MANAGER",
    _AIRFLOW,
    "Airflow's auth manager; the admin user is created only with FAB's (the compose file and ECS set it).",
)
CHECK_MIGRATIONS = _declare(
    "AIRFLOW__DATABASE__CHECK_MIGRATIONS",
    _AIRFLOW,
    "Whether the api-server, the scheduler, the dag-processor and the triggerer refuse to start on a metadata "
    "DB not migrated to their Airflow. The stack checks it before they start (one query, against the heads the "
    "image build recorded) and then turns Airflow's own check off, which loads every migration script and keeps "
    "them (about 8 MiB in each). `false`: neither check.",
    BOOLEAN,
    True,
)
SQL_ALCHEMY_SCHEMA = _declare(
    "AIRFLOW__DATABASE__SQL_ALCHEMY_SCHEMA",
    _AIRFLOW,
    "The schema of Airflow's tables, when not the default; with one set, Airflow checks the migration itself.",
)
BASE_LOG_FOLDER = _declare(
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER",
    _AIRFLOW,
    "The local log folder that `log-groomer` keeps in check.",
    PATH,
    Path("/opt/airflow/logs"),
)

# Airflow's options the stack sets from its own settings (explicit values win).
_SET = "Airflow: options the stack sets"
REMOTE_LOGGING = _declare(
    "AIRFLOW__LOGGING__REMOTE_LOGGING",
    _SET,
    "Remote task logs on or off.",
    BOOLEAN,
    False,
    set_by_stack="`True` when AIRFLOW_STACK_LOGS_S3_URL is set",
)
REMOTE_BASE_LOG_FOLDER = _declare(
    "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER",
    _SET,
    "Where remote task logs go.",
    set_by_stack="AIRFLOW_STACK_LOGS_S3_URL",
)
REMOTE_LOG_CONN_ID = _declare(
    "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID",
    _SET,
    "The connection that reads and writes remote task logs.",
    set_by_stack="`s3_Airflow_Logs` when AIRFLOW_STACK_LOGS_S3_URL is set (created by bootstrap)",
)
DELETE_LOCAL_LOGS = _declare(
    "AIRFLOW__LOGGING__DELETE_LOCAL_LOGS",
    _SET,
    "Delete a task's local log once it is uploaded.",
    set_by_stack="`True` when AIRFLOW_STACK_LOGS_S3_URL is set",
)
DAG_BUNDLE_CONFIG_LIST = _declare(
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
    _SET,
    "Airflow's DAG bundles.",
    set_by_stack="the release store's bundle when AIRFLOW_STACK_DAG_RELEASES_DIR is set",
)
DAG_FOLDER_REFRESH_INTERVAL = _declare(
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL",
    _SET,
    "Seconds between two listings of the DAG folder for new files (Airflow: 300).",
    set_by_stack="AIRFLOW_STACK_DAG_REFRESH_INTERVAL when DAGs come from the folder",
)
BUNDLE_REFRESH_CHECK_INTERVAL = _declare(
    "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL",
    _SET,
    "How often the dag-processor checks bundles (Airflow: 5).",
    set_by_stack="AIRFLOW_STACK_DAG_REFRESH_INTERVAL",
)
MIN_SERIALIZED_DAG_UPDATE_INTERVAL = _declare(
    "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL",
    _SET,
    "Minimum seconds between two writes of a changed serialized DAG (Airflow: 30).",
    set_by_stack="`0`, so a changed DAG or a new release is written at once",
)

# Start-up of every component.
_STARTUP = "Start-up and secrets"
WAIT_TIMEOUT = _declare(
    "AIRFLOW_STACK_WAIT_TIMEOUT",
    _STARTUP,
    "Seconds a component waits, in all, for its database, broker and (a worker) the api-server before it refuses.",
    seconds(),
    45.0,
)
ALLOW_WEAK_SECRETS = _declare(
    "AIRFLOW_STACK_ALLOW_WEAK_SECRETS",
    _STARTUP,
    "Accept empty, short or well-known passwords and secrets. For a throwaway development stack only.",
    BOOLEAN,
    False,
)
ACCEPT_NEW_SECRETS = _declare(
    "AIRFLOW_STACK_ACCEPT_NEW_SECRETS",
    _STARTUP,
    "Lets `db-migrate` record a changed JWT secret or API secret key (after a deliberate rotation).",
    choices("jwt_secret", "secret_key"),
    (),
)
SERVE_LOGS = _declare(
    "AIRFLOW_STACK_SERVE_LOGS",
    _STARTUP,
    "Run the worker's and the triggerer's log servers (ports 8793/8794), through which the UI shows running and "
    "deferred tasks' logs when the log folder is not shared (ECS). `false`, the local stack's default, where every "
    "container shares the log folder, saves a process in each; the api-server then reads logs from the folder only.",
    BOOLEAN,
    True,
)
DB_PASSWORD = _declare(
    "AIRFLOW_STACK_DB_PASSWORD",
    _STARTUP,
    "The PostgreSQL password, put into the database URLs that have none (ECS injects it from Secrets Manager).",
    secret=True,
)
REDIS_PASSWORD = _declare(
    "AIRFLOW_STACK_REDIS_PASSWORD",
    _STARTUP,
    "The Redis password, put into the broker and result-backend URLs that have none.",
    secret=True,
)
FLOWER_USERNAME = _declare("AIRFLOW_STACK_FLOWER_USERNAME", _STARTUP, "Flower's basic-auth user.", TEXT, "flower")
FLOWER_PASSWORD = _declare(
    "AIRFLOW_STACK_FLOWER_PASSWORD",
    _STARTUP,
    "Flower's basic-auth password; becomes AIRFLOW__CELERY__FLOWER_BASIC_AUTH with AIRFLOW_STACK_FLOWER_USERNAME.",
    secret=True,
)

RUN_AS_UID = _declare(
    "AIRFLOW_STACK_RUN_AS_UID",
    _STARTUP,
    "Set where a container starts as root (dag-sync, so that validation can run as its own uid): the "
    "entrypoint reads the `*_FILE` secrets, then turns into this uid, group 0, before the command runs.",
    whole(1, 2**31 - 2),
)

_ADMIN = "The admin user (db-migrate)"
ADMIN_USERNAME = _declare(
    "AIRFLOW_ADMIN_USERNAME", _ADMIN, "The UI admin user that `db-migrate` creates if missing; unset: none."
)
ADMIN_PASSWORD = _declare("AIRFLOW_ADMIN_PASSWORD", _ADMIN, "The admin user's password.", secret=True)
ADMIN_EMAIL = _declare("AIRFLOW_ADMIN_EMAIL", _ADMIN, "The admin user's e-mail (default: USER@example.invalid).")
ADMIN_FIRSTNAME = _declare("AIRFLOW_ADMIN_FIRSTNAME", _ADMIN, "The admin user's first name.", TEXT, "Airflow")
ADMIN_LASTNAME = _declare("AIRFLOW_ADMIN_LASTNAME", _ADMIN, "The admin user's last name.", TEXT, "Admin")

_JOBS = "Connections, logs and monitoring"
BOOTSTRAP_FILE = _declare(
    "AIRFLOW_STACK_BOOTSTRAP_FILE",
    _JOBS,
    "The connections, variables and pools file that `bootstrap` applies.",
    PATH,
    Path("/opt/airflow/config/connections.yaml"),
)
BOOTSTRAP_CONTENT = _declare(
    "AIRFLOW_STACK_BOOTSTRAP_CONTENT",
    _JOBS,
    "The bootstrap file's content itself, instead of AIRFLOW_STACK_BOOTSTRAP_FILE (on ECS, injected from the "
    "environment's Secrets Manager secret by `make -C deploy/aws bootstrap`).",
    secret=True,
)
LOGS_S3_URL = _declare(
    "AIRFLOW_STACK_LOGS_S3_URL",
    _JOBS,
    "`s3://bucket/prefix`: task logs go to S3 (every component that writes or reads them probes it at start).",
    url("s3"),
)
S3_ENDPOINT_URL = _declare(
    "AIRFLOW_STACK_S3_ENDPOINT_URL",
    _JOBS,
    "An S3-compatible endpoint instead of AWS's (the local `s3` profile).",
    HTTP_URL,
)
LOG_RETENTION_DAYS = _declare(
    "AIRFLOW_STACK_LOG_RETENTION_DAYS",
    _JOBS,
    "`log-groomer` deletes local log files older than this.",
    positive_number("days"),
    15.0,
)
LOG_GROOM_INTERVAL = _declare(
    "AIRFLOW_STACK_LOG_GROOM_INTERVAL", _JOBS, "Seconds between two passes of `log-groomer`.", seconds(), 3600.0
)
FLOWER_MAX_TASKS = _declare(
    "AIRFLOW_STACK_FLOWER_MAX_TASKS",
    _JOBS,
    "How many tasks Flower keeps in memory (its `max_tasks`; Flower's own default, 100,000, is about 0.7 GiB). "
    "The oldest are dropped; Airflow keeps every task's history.",
    whole(100),
    5000,
)
MONITOR_INTERVAL = _declare(
    "AIRFLOW_STACK_MONITOR_INTERVAL", _JOBS, "Seconds between two samples of the monitor.", seconds(), 30.0
)
MONITOR_SINKS = _declare(
    "AIRFLOW_STACK_MONITOR_SINKS",
    _JOBS,
    "Where the monitor sends each sample; `ecs` sizes the worker services of AIRFLOW_STACK_WORKERS_CLUSTER "
    "(airflow_stack.ops.scaler).",
    choices("log", "prometheus", "cloudwatch", "ecs"),
    ("log",),
)
MONITOR_PROMETHEUS_PORT = _declare(
    "AIRFLOW_STACK_MONITOR_PROMETHEUS_PORT",
    _JOBS,
    "The port of the monitor's Prometheus endpoint (`/metrics`).",
    whole(1, 65535),
    9108,
)
MONITOR_NAMESPACE = _declare(
    "AIRFLOW_STACK_MONITOR_NAMESPACE",
    _JOBS,
    "The CloudWatch namespace of the monitor's metrics.",
    TEXT,
    "AirflowStack",
)
MONITOR_STACK = _declare(
    "AIRFLOW_STACK_MONITOR_STACK", _JOBS, "The `Stack` dimension of the monitor's CloudWatch metrics.", TEXT, "local"
)
CLOUDWATCH_ENDPOINT_URL = _declare(
    "AIRFLOW_STACK_CLOUDWATCH_ENDPOINT_URL",
    _JOBS,
    "A CloudWatch-compatible endpoint instead of AWS's (tests).",
    HTTP_URL,
)
WORKERS_CLUSTER = _declare(
    "AIRFLOW_STACK_WORKERS_CLUSTER",
    _JOBS,
    "The ECS cluster whose worker services the monitor's `ecs` sink sizes (services tagged "
    "`airflow-stack:max-workers`).",
    TEXT,
)
ECS_ENDPOINT_URL = _declare(
    "AIRFLOW_STACK_ECS_ENDPOINT_URL",
    _JOBS,
    "An ECS-compatible endpoint instead of AWS's (tests).",
    HTTP_URL,
)
REQUEUE = _declare(
    "AIRFLOW_STACK_REQUEUE",
    _JOBS,
    "Each monitor sample, return to their queue the Celery messages that a worker took and no live worker "
    "holds any more (a worker that died), when their task never started, and hand to the scheduler the "
    "queued tasks whose message the broker lost (Redis lost its data). `false`: such tasks wait for "
    "Airflow's `[scheduler] task_queued_timeout`.",
    BOOLEAN,
    True,
)
REQUEUE_AFTER = _declare(
    "AIRFLOW_STACK_REQUEUE_AFTER",
    _JOBS,
    "Seconds a taken message must go unheld by every live worker, or a queued task's message be missing "
    "from the broker, over at least two monitor samples, before it is returned or handed to the scheduler.",
    seconds(),
    60.0,
)

_DAGS = "DAG deployment (dag-sync)"
DAG_RELEASES_DIR = _declare(
    "AIRFLOW_STACK_DAG_RELEASES_DIR",
    _DAGS,
    "The release store (EFS on AWS). Set in an Airflow component, it reads DAGs from the store's current "
    "release instead of the DAG folder; dag-sync writes it (`/opt/airflow/dag-releases` when unset).",
    PATH,
)
DAG_REFRESH_INTERVAL = _declare(
    "AIRFLOW_STACK_DAG_REFRESH_INTERVAL",
    _DAGS,
    "Seconds between two checks by the dag-processor for new DAG files in the DAG folder, or for a new "
    "release in the release store (Airflow checks its folder every 300 s).",
    whole(),
    2,
)
DAG_SOURCE = _declare(
    "AIRFLOW_STACK_DAG_SOURCE",
    _DAGS,
    "Where dag-sync finds releases: an artifact (`.../dags.tar.gz`, `.tgz`, `.zip`) or a version pointer "
    "(`.../LATEST`) over `http(s)://` or `s3://bucket/key`.",
    url("http", "https", "s3"),
)
DAG_SYNC_INTERVAL = _declare(
    "AIRFLOW_STACK_DAG_SYNC_INTERVAL", _DAGS, "Seconds between two polls of the source.", seconds(), 5.0
)
DAG_KEEP_RELEASES = _declare(
    "AIRFLOW_STACK_DAG_KEEP_RELEASES",
    _DAGS,
    "Releases kept on disk, the current one included (a task runs the release its DAG run was created with).",
    whole(2),
    10,
)
DAG_VALIDATE = _declare(
    "AIRFLOW_STACK_DAG_VALIDATE", _DAGS, "Import a release's DAGs before activating it.", BOOLEAN, True
)
DAG_VALIDATE_TIMEOUT = _declare(
    "AIRFLOW_STACK_DAG_VALIDATE_TIMEOUT", _DAGS, "Seconds the validation import may take.", seconds(), 300.0
)
DAG_VALIDATE_UID = _declare(
    "AIRFLOW_STACK_DAG_VALIDATE_UID", _DAGS,
    "The uid (and gid) DAG code runs as while a release is validated: one no other process uses, which owns "
    "nothing (every process of it is killed after each validation).", whole(1, 2**31 - 2), 50001,
)  # fmt: skip
DAG_VALIDATE_MEMORY_MB = _declare(
    "AIRFLOW_STACK_DAG_VALIDATE_MEMORY_MB",
    _DAGS,
    "Memory the validation's DAG code may take, beyond what importing Airflow took.",
    positive_number("MB"),
    1024.0,
)
DAG_REQUIRE_CHECKSUM = _declare(
    "AIRFLOW_STACK_DAG_REQUIRE_CHECKSUM",
    _DAGS,
    "Refuse an artifact that comes with no SHA-256 (pointer line, header, S3 metadata or `.sha256` sidecar).",
    BOOLEAN,
    False,
)
DAG_MAX_ARCHIVE_MB = _declare(
    "AIRFLOW_STACK_DAG_MAX_ARCHIVE_MB", _DAGS, "The largest artifact dag-sync downloads.", positive_number("MB"), 200.0
)
DAG_MAX_EXTRACTED_MB = _declare(
    "AIRFLOW_STACK_DAG_MAX_EXTRACTED_MB", _DAGS, "The most an artifact may extract to.", positive_number("MB"), 1000.0
)
DAG_MAX_FILES = _declare("AIRFLOW_STACK_DAG_MAX_FILES", _DAGS, "The most entries an artifact may hold.", whole(), 20000)
DAG_SOURCE_TIMEOUT = _declare(
    "AIRFLOW_STACK_DAG_SOURCE_TIMEOUT", _DAGS, "Seconds a request to the source may stall.", seconds(), 30.0
)
DAG_SOURCE_TOKEN = _declare(
    "AIRFLOW_STACK_DAG_SOURCE_TOKEN", _DAGS, "A bearer token for an HTTP(S) source.", secret=True
)
DAG_SOURCE_USERNAME = _declare("AIRFLOW_STACK_DAG_SOURCE_USERNAME", _DAGS, "The basic-auth user for an HTTP(S) source.")
DAG_SOURCE_PASSWORD = _declare(
    "AIRFLOW_STACK_DAG_SOURCE_PASSWORD", _DAGS, "The basic-auth password for an HTTP(S) source.", secret=True
)
DAG_SOURCE_ALLOWED_ORIGINS = _declare(
    "AIRFLOW_STACK_DAG_SOURCE_ALLOWED_ORIGINS", _DAGS,
    "Other origins (`https://host[:port]`, comma-separated) that the source may redirect to or a pointer may "
    "name. They never get the source's credentials; any other origin is refused.", url_list("http", "https"), (),
)  # fmt: skip
DAG_POLL_TIMEOUT = _declare(
    "AIRFLOW_STACK_DAG_POLL_TIMEOUT",
    _DAGS,
    "Seconds one poll may take to ask the source and download, however slowly the source sends.",
    seconds(),
    600.0,
)
DAG_SOURCE_CA_BUNDLE = _declare(
    "AIRFLOW_STACK_DAG_SOURCE_CA_BUNDLE",
    _DAGS,
    "A CA bundle that verifies an HTTPS source (default: the system's).",
    PATH,
)

_CACHE = "Workers"
DAG_CACHE = _declare(
    "AIRFLOW_STACK_DAG_CACHE",
    _CACHE,
    "Parse each DAG file once per Celery pool process and version of the file, not once per task "
    "(tasks fork from the pool process and inherit the parse). Its top-level code then runs once per "
    "pool process and version, in the process that supervises tasks. `false`: each task parses its file.",
    BOOLEAN,
    True,
)
DAG_CACHE_ENTRIES = _declare(
    "AIRFLOW_STACK_DAG_CACHE_ENTRIES",
    _CACHE,
    "How many parsed DAG files one pool process keeps (least recently used out first).",
    whole(1, 10000),
    32,
)
DAG_CACHE_MIB = _declare(
    "AIRFLOW_STACK_DAG_CACHE_MIB",
    _CACHE,
    "How much resident memory one pool process's parsed DAG files may take, as measured around each "
    "parse (the most recent always stays).",
    positive_number("MiB"),
    64.0,
)
SHARED_HEAP = _declare(
    "AIRFLOW_STACK_SHARED_HEAP",
    _CACHE,
    "Make the objects a process holds immortal just before it forks (the worker's main process before "
    "its pool forks, the triggerer before it forks its trigger runner), so the children do not copy the "
    "pages whose reference counts they would write (CPython 3.12 and 3.13; anything else is left alone). "
    "They are then never freed. `false`: CPython's own counting.",
    BOOLEAN,
    True,
)

_SCHEDULER = "Scheduler"
SCHEDULER_RECHECK = _declare(
    "AIRFLOW_STACK_SCHEDULER_RECHECK",
    _SCHEDULER,
    "While tasks are queued or running, the scheduler's idle sleep after a loop that queued tasks or saw "
    "tasks end; doubled on each idle loop after it, up to Airflow's `[scheduler] scheduler_idle_sleep_time`. "
    "With no task in flight the sleep is Airflow's. For a scheduler with CPU to spare (e.g. `0.5`): tasks "
    "are queued sooner, for more scheduler loops. `0`: Airflow's idle sleep throughout.",
    Kind("a number of seconds, 0 or more", _number(float, 0, None)),
    0.0,
)

_WORKER = "Workers on ECS"
ECS_AGENT_URI = _declare(
    "ECS_AGENT_URI",
    _WORKER,
    "Set by ECS inside a task; the worker's scale-in protection calls its agent there.",
    HTTP_URL,
)
ECS_CONTAINER_METADATA_URI_V4 = _declare(
    "ECS_CONTAINER_METADATA_URI_V4",
    _WORKER,
    "Set by ECS inside a task; the worker reads its cluster and task there to tell whether a deployment "
    "replaced it (airflow_stack.worker.deploydrain).",
    HTTP_URL,
)
DEPLOYMENT_CHECK = _declare(
    "AIRFLOW_STACK_DEPLOYMENT_CHECK",
    _WORKER,
    "Seconds between two checks of whether the worker's ECS service has a newer primary deployment; a worker "
    "left behind stops taking tasks, finishes its own and lets ECS stop it.",
    seconds(),
    30.0,
)
SCALE_IN_PROTECTION_CHECK = _declare(
    "AIRFLOW_STACK_SCALE_IN_PROTECTION_CHECK",
    _WORKER,
    "Seconds between two checks of whether the worker holds tasks (scale-in protection on ECS).",
    whole(),
    5,
)
SCALE_IN_PROTECTION_MINUTES = _declare(
    "AIRFLOW_STACK_SCALE_IN_PROTECTION_MINUTES",
    _WORKER,
    "How long one protection call protects a busy worker; renewed at half-time while it is busy (ECS: 1-2880).",
    whole(1, 2880),
    60,
)


# -- reading the environment -------------------------------------------------------------------
def resolve_file_twins(env: MutableMapping[str, str]) -> list[str]:
    """Replace each `*_FILE` twin of a secret (and any `AIRFLOW__..._FILE`) with the plain
    variable holding the file's content; return the names filled from files."""
    filled = []
    for name in [n for n in env if n.endswith("_FILE")]:
        target = name[: -len("_FILE")]
        declared = REGISTRY.get(target)
        if not (declared and declared.secret) and not target.startswith("AIRFLOW__"):
            continue
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
        filled.append(target)
    return filled


def read_all(env: Mapping[str, str], fields: Mapping[str, Setting]) -> dict[str, Any]:
    """{field: parsed value} for several settings; one StackError naming every bad one."""
    values, problems = {}, []
    for field, setting in fields.items():
        try:
            values[field] = setting.read(env)
        except StackError as exc:
            problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise StackError(
            f"{len(problems)} settings are invalid: " + "; ".join(p.problem for p in problems),
            setting=", ".join(p.setting or "" for p in problems),
            fix=f"correct them; {docs('configuration.md')} gives each one's type and default",
        )
    return values


def check_known(env: Mapping[str, str]) -> None:
    """Refuse an `AIRFLOW_STACK_*` variable the registry does not declare: a typo is an error,
    not a silent default."""
    for name in sorted(env):
        twin_of = REGISTRY.get(name.removesuffix("_FILE")) if name.endswith("_FILE") else None
        if name.startswith(PREFIX) and name not in REGISTRY and not (twin_of and twin_of.secret):
            close = difflib.get_close_matches(name, [n for n in REGISTRY if n.startswith(PREFIX)], n=1)
            raise StackError(
                f"{name} is not a setting of this image",
                setting=name,
                fix=(f"did you mean {close[0]}? " if close else "")
                + f"unset it; `airflow-stack settings` and {docs('configuration.md')} list every setting",
            )


def is_provided(setting: Setting, env: Mapping[str, str]) -> bool:
    """True when the setting has a value in any form Airflow will resolve."""
    return any(env.get(setting.name + suffix) for suffix in ("", "_CMD", "_SECRET"))


# The variable holding a password, and the URL settings (and schemes) it completes.
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
    """Put AIRFLOW_STACK_DB_PASSWORD / AIRFLOW_STACK_REDIS_PASSWORD into the URLs that connect
    to PostgreSQL / Redis and carry no password; refuse a URL that already has one.
    AIRFLOW_STACK_FLOWER_PASSWORD becomes Flower's basic auth (user AIRFLOW_STACK_FLOWER_USERNAME)."""
    if password := FLOWER_PASSWORD.raw(env):
        if FLOWER_BASIC_AUTH.raw(env):
            raise StackError(
                f"{FLOWER_BASIC_AUTH.name} and {FLOWER_PASSWORD.name} are both set; only one source is allowed",
                setting=FLOWER_BASIC_AUTH.name,
                fix=f"unset one of {FLOWER_BASIC_AUTH.name} and {FLOWER_PASSWORD.name}",
            )
        env[FLOWER_BASIC_AUTH.name] = f"{FLOWER_USERNAME.read(env)}:{password}"
    for variable, (targets, scheme_part) in _PASSWORD_TARGETS.items():
        password = variable.raw(env)
        if not password:
            continue
        for setting in targets:
            url = setting.raw(env)
            parts = urlsplit(url) if url else None
            if not parts or scheme_part not in parts.scheme:
                continue
            if parts.password is not None:
                raise StackError(
                    f"{setting.name} has a password and {variable.name} is set too; only one source is allowed",
                    setting=setting.name,
                    fix=f"remove the password from {setting.name} (user@host) or unset {variable.name}",
                )
            env[setting.name] = _with_password(url, password)


# -- showing the registry ----------------------------------------------------------------------
def render(value: Any) -> str:
    """A parsed value as a user would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value) or "(none)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "(unset)" if value is None else str(value)


def current(setting: Setting, env: Mapping[str, str], from_files: frozenset[str] = frozenset()) -> str:
    """What the setting is now, for `airflow-stack settings`: secrets masked, bad values named."""
    raw = setting.raw(env)
    if raw is None:
        if any(env.get(setting.name + s) for s in ("_CMD", "_SECRET")):
            return "(resolved by Airflow from _CMD/_SECRET)"
        return f"{render(setting.default)} (default)" if setting.default is not None else "(unset)"
    source = " (from file)" if setting.name in from_files else ""
    try:
        parsed = setting.kind.parse(raw)
    except ValueError as exc:
        return f"INVALID: {'(secret)' if setting.secret else repr(raw)} {exc}"
    return f"****{source}" if setting.secret else render(parsed) + source


def table(env: Mapping[str, str], from_files: frozenset[str] = frozenset()) -> str:
    """The registry with the current values, grouped, one line per setting."""
    lines = []
    width = max(len(n) for n in REGISTRY)
    for group in dict.fromkeys(s.group for s in REGISTRY.values()):
        lines.append(f"\n{group}")
        for setting in (s for s in REGISTRY.values() if s.group == group):
            lines.append(f"  {setting.name:{width}}  {current(setting, env, from_files)}")
    return "\n".join(lines).lstrip("\n")


def markdown() -> str:
    """docs/configuration.md, generated from the registry (`make docs`)."""
    out = [
        "# Configuration",
        "",
        "<!-- Generated from src/airflow_stack/core/settings.py by `make docs`; edit the registry, not this "
        "page. A unit test fails when they differ. -->",
        "",
        "Every environment variable the image reads, declared once in `airflow_stack.core.settings`. "
        "`airflow-stack settings` (locally: `make settings`) prints them with their current values, "
        "secrets masked. A bad value stops the component with a message naming the variable; an "
        "`AIRFLOW_STACK_*` variable that is not listed here is refused as a typo.",
        "",
        "Every secret may also be given as a file: `NAME_FILE=/run/secrets/name` reads the value from "
        "that file (Docker and Compose secrets, mounted files). Setting both `NAME` and `NAME_FILE` is an "
        "error. Any other Airflow option works as Airflow documents it (`AIRFLOW__SECTION__KEY`, and its "
        "`_CMD`, `_SECRET` and `_FILE` forms).",
        "",
        "The variables of the local stack's `.env` (ports, folders, passwords) are in "
        "[the local stack's page](local-stack.md#the-env-file).",
        "",
    ]
    for group in dict.fromkeys(s.group for s in REGISTRY.values()):
        out += [f"## {group}", ""]
        for setting in (s for s in REGISTRY.values() if s.group == group):
            out += [f"### {setting.name}", "", setting.description, ""]
            facts = [f"type: {setting.kind.expects}"]
            if setting.default is not None:
                facts.append(f"default: `{render(setting.default)}`")
            if setting.secret:
                facts.append(f"secret; or `{setting.file_twin}`")
            if setting.set_by_stack:
                facts.append(f"set by the stack from {setting.set_by_stack}")
            out += ["- " + "; ".join(facts), ""]
    return "\n".join(out).rstrip("\n") + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
