"""The component table: everything that differs between the image's components, as fields.

A component name is the same everywhere: `airflow-stack run NAME`, the compose service and the
ECS container. The entrypoint (cli), the start-up checks (preflight), the health probes
(healthcheck) and `make up`'s wait (stackwait) read these fields; none of them tests a name.
Standard library only: the host tools read it too.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError, log
from airflow_stack.core.settings import Setting

API_SERVER_PORT = 8080
FLOWER_PORT = 5555

_SHARED_SECRETS = (settings.FERNET_KEY, settings.JWT_SECRET, settings.API_SECRET_KEY)


@dataclass(frozen=True)
class Probe:
    """How `airflow-stack healthcheck NAME` asks whether a component is well, without importing Airflow."""

    kind: str  # "http": GET target | "heartbeat": the job `target`'s heartbeat | "celery-ping" | "dag-sync-status"
    target: str = ""


@dataclass(frozen=True)
class Component:
    name: str
    summary: str
    # What runs after the checks: a command that replaces the entrypoint (signals reach it), or a
    # "module:function" called in-process with the environment.
    command: tuple[str, ...] = ()
    job: str = ""
    one_shot: bool = False  # runs once and exits 0; compose waits for it to complete
    required: tuple[Setting, ...] = ()  # refused at start when missing
    # The PostgreSQL database waited for: "metadata", or "result-backend" (the Celery result
    # backend when it is a database, else the metadata DB); "" for none.
    database: str = ""
    waits_for_broker: bool = False
    waits_for_execution_api: bool = False
    # Where the shared secrets' fingerprints are compared: "metadata-db" (recorded by
    # db-migrate), "api-server-endpoint" (it publishes them), "records" (db-migrate writes them), "".
    fingerprints: str = ""
    # Its Airflow command checks the metadata DB's migration at start: the checks do it instead,
    # with one query, and turn Airflow's own off (checks.migrations).
    checks_migrations: bool = False
    serves_logs: bool = False  # runs Airflow's log server unless AIRFLOW_STACK_SERVE_LOGS=false
    # Its supervisor writes log files: run through airflow_stack.ops.logfiles, so that a log file
    # that cannot be written is reported instead of stopping it (the worker installs it itself).
    guards_log_files: bool = False
    task_logs: bool = False  # writes or reads task logs: with S3 logs on, probes the bucket at start
    passwords: tuple[Setting, ...] = ()  # plain passwords checked at start, beyond those in URLs
    probe: Probe | None = None
    prepare_env: Callable[[MutableMapping[str, str]], None] | None = None  # before the command runs
    # Starts as root and keeps the means to run processes as another uid (dag-sync's validation
    # sandbox, core.privileges); every other component started as root drops it for good.
    switches_uid: bool = False
    # Imported while the checks wait for the services the component depends on; its Airflow
    # command then runs in this process (Airflow's command line, keeping them) instead of exec.
    # Only for a plain `airflow ...` command: no log file guard, no prepare_env (a unit test).
    imports_while_waiting: tuple[str, ...] = ()
    # "module:function"s called with the environment in the process that then runs the Airflow
    # command (imports_while_waiting: after the imports; guards_log_files: in the log file guard's
    # process); each changes that process and returns what it did, for the component's log.
    installs: tuple[str, ...] = ()


def flower_environment(env: MutableMapping[str, str]) -> None:
    """Hands Airflow's broker URL, Flower basic auth and the bound on Flower's task memory to plain
    Celery and Flower, through the environment (never the command line, which `ps` shows)."""
    broker = settings.BROKER_URL.raw(env)
    if not broker:
        raise StackError(
            f"Flower runs without Airflow, so it cannot resolve {settings.BROKER_URL.name}_CMD or _SECRET",
            setting=settings.BROKER_URL.name,
            fix=f"give Flower {settings.BROKER_URL.name} itself, or {settings.BROKER_URL.name}_FILE",
        )
    env["CELERY_BROKER_URL"] = broker
    env["FLOWER_MAX_TASKS"] = str(settings.FLOWER_MAX_TASKS.read(env))
    if basic_auth := settings.FLOWER_BASIC_AUTH.raw(env):
        env["FLOWER_BASIC_AUTH"] = basic_auth


_AIRFLOW = {"required": (*_SHARED_SECRETS, settings.SQL_ALCHEMY_CONN), "database": "metadata"}

COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "api-server",
            "the UI, the REST API and the workers' execution API",
            command=("airflow", "api-server", "--port", str(API_SERVER_PORT)),
            **_AIRFLOW,
            fingerprints="metadata-db",
            checks_migrations=True,
            task_logs=True,
            probe=Probe("http", f"http://127.0.0.1:{API_SERVER_PORT}/api/v2/monitor/health"),
        ),
        Component(
            "scheduler",
            "creates DAG runs and queues their tasks on Celery",
            command=("airflow", "scheduler"),
            required=(*_AIRFLOW["required"], settings.BROKER_URL),
            database="metadata",
            waits_for_broker=True,
            fingerprints="metadata-db",
            checks_migrations=True,
            task_logs=True,
            # Its own health server ([scheduler] enable_health_check) would cost a process of about
            # 80 MiB to answer what its heartbeat answers.
            probe=Probe("heartbeat", "SchedulerJob"),
            # Airflow's scheduler and the Celery executor while it waits for PostgreSQL and Redis.
            imports_while_waiting=(
                "airflow.jobs.scheduler_job_runner",
                "airflow.providers.celery.executors.celery_executor",
                "airflow.cli.commands.scheduler_command",
            ),
            installs=(
                "airflow_stack.scheduler.resultsessions:install",
                "airflow_stack.scheduler.loopwait:install",
                "airflow_stack.ops.lazylogserver:scheduler",
            ),
        ),
        Component(
            "dag-processor",
            "parses DAG files into the metadata DB",
            command=("airflow", "dag-processor"),
            **_AIRFLOW,
            fingerprints="metadata-db",
            checks_migrations=True,
            guards_log_files=True,
            task_logs=True,
            probe=Probe("heartbeat", "DagProcessorJob"),
            installs=("airflow_stack.dagprocessor.lazyclient:install",),
        ),
        Component(
            "triggerer",
            "runs deferred tasks' triggers",
            command=("airflow", "triggerer"),
            **_AIRFLOW,
            fingerprints="metadata-db",
            checks_migrations=True,
            guards_log_files=True,
            serves_logs=True,
            task_logs=True,
            probe=Probe("heartbeat", "TriggererJob"),
            installs=("airflow_stack.ops.forkfreeze:install", "airflow_stack.ops.lazylogserver:triggerer"),
        ),
        Component(
            "worker",
            "a Celery worker: runs tasks, talks to the api-server, never to the metadata DB",
            command=("airflow", "celery", "worker"),
            required=(*_SHARED_SECRETS, settings.BROKER_URL, settings.EXECUTION_API_SERVER_URL),
            database="result-backend",
            waits_for_broker=True,
            waits_for_execution_api=True,
            fingerprints="api-server-endpoint",
            serves_logs=True,
            task_logs=True,
            probe=Probe("celery-ping"),
            # Airflow, its Celery app and command, and the task runner's DAG parsing (2.5-9 s on 2
            # cores), while the worker waits for the api-server. Not worker.celery_hooks: it must run
            # when Celery imports it, after Airflow's own preloading (celery_executor_utils).
            imports_while_waiting=(
                "airflow.providers.celery.executors.celery_executor",
                "airflow.providers.celery.cli.celery_command",
                "airflow.dag_processing.dagbag",
            ),
            installs=("airflow_stack.ops.lazylogserver:worker",),
        ),
        Component(
            "flower",
            "Celery's monitoring UI",
            # Plain Celery's Flower, not `airflow celery flower`: Flower needs the broker only, and
            # without Airflow imported it takes about 50 MiB instead of 135 (flower_environment).
            command=("celery", "flower", "--address=0.0.0.0", f"--port={FLOWER_PORT}"),
            required=(settings.BROKER_URL,),
            waits_for_broker=True,
            passwords=(settings.FLOWER_BASIC_AUTH,),
            probe=Probe("http", f"http://127.0.0.1:{FLOWER_PORT}/healthcheck"),
            prepare_env=flower_environment,
        ),
        Component(
            "db-migrate",
            "one-shot: records the secrets' fingerprints, migrates the metadata DB, creates the admin user",
            job="airflow_stack.jobs.db_migrate:run",
            one_shot=True,
            **_AIRFLOW,
            fingerprints="records",
            passwords=(settings.ADMIN_PASSWORD,),
        ),
        Component(
            "bootstrap",
            "one-shot: applies the connections, variables and pools file",
            job="airflow_stack.jobs.bootstrap:run",
            one_shot=True,
            required=(settings.FERNET_KEY, settings.SQL_ALCHEMY_CONN),
            database="metadata",
        ),
        Component(
            "dag-sync",
            "pulls versioned DAG artifacts and switches them in atomically",
            job="airflow_stack.dags.dagsync:serve",
            required=(settings.DAG_SOURCE,),
            probe=Probe("dag-sync-status"),
            switches_uid=True,
        ),
        Component(
            "monitor",
            "queue depth, desired workers and heartbeat ages to logs, Prometheus and CloudWatch; "
            "returns a dead worker's unstarted tasks to their queue",
            job="airflow_stack.ops.monitor:serve",
            required=(settings.SQL_ALCHEMY_CONN, settings.BROKER_URL),
            database="metadata",
            waits_for_broker=True,
        ),
        Component(
            "log-groomer",
            "deletes local log files past their retention",
            job="airflow_stack.ops.loggroom:serve",
        ),
    )
}


def argv(component: Component, env: Mapping[str, str]) -> tuple[str, ...]:
    """The command the component runs: without its log server when AIRFLOW_STACK_SERVE_LOGS=false,
    and through the log file guard (airflow_stack.ops.logfiles) when it writes log files."""
    command = component.command
    if component.serves_logs and not settings.SERVE_LOGS.read(env):
        command = (*command, "--skip-serve-logs")
    if component.guards_log_files:
        command = (sys.executable, "-m", "airflow_stack.ops.logfiles", component.name, *command)
    return command


def call(target: str, env: MutableMapping[str, str]):
    """Call the "module:function" `target` (a component's job or install) with the environment."""
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)(env)


def install(component: Component, env: MutableMapping[str, str]) -> None:
    """Call each of the component's `installs` in this process; log what each did."""
    for target in component.installs:
        log(call(target, env))


def one_shot_names() -> frozenset[str]:
    return frozenset(name for name, component in COMPONENTS.items() if component.one_shot)


def get(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise StackError(
            f"unknown component {name!r}",
            fix=f"use one of: {', '.join(COMPONENTS)}",
        ) from None
