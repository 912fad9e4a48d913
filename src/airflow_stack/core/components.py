"""What each Airflow component runs, which secrets it needs and what it waits for.

This table is the single place that maps a component name (as used by `airflow-stack run`,
the compose file and the ECS task definitions) to the Airflow command it execs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError
from airflow_stack.core.settings import Setting

API_SERVER_PORT = 8080
FLOWER_PORT = 5555

_SHARED_SECRETS = (settings.FERNET_KEY, settings.JWT_SECRET, settings.API_SECRET_KEY)


@dataclass(frozen=True)
class Component:
    name: str
    argv: tuple[str, ...]  # empty: one-shot jobs run in-process (init, bootstrap)
    required: tuple[Setting, ...]
    waits_for_db: bool
    waits_for_broker: bool
    serves_logs: bool = False  # runs Airflow's log server unless AIRFLOW_STACK_SERVE_LOGS=false
    prepare_env: Callable[[MutableMapping[str, str]], None] | None = None  # before exec, e.g. flower_environment


def flower_environment(env: MutableMapping[str, str]) -> None:
    """Hands Airflow's broker URL and Flower basic auth to plain Celery and Flower, through the
    environment (never the command line, which `ps` shows)."""
    broker = settings.value(settings.BROKER_URL, env)
    if not broker:
        raise StackError(
            f"Flower runs without Airflow, so it cannot resolve {settings.BROKER_URL.env}_CMD or _SECRET",
            setting=settings.BROKER_URL.env,
            fix=f"give Flower {settings.BROKER_URL.env} itself, or {settings.BROKER_URL.env}_FILE",
        )
    env["CELERY_BROKER_URL"] = broker
    if env.get(settings.FLOWER_BASIC_AUTH):
        env["FLOWER_BASIC_AUTH"] = env[settings.FLOWER_BASIC_AUTH]


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "api-server",
            ("airflow", "api-server", "--port", str(API_SERVER_PORT)),
            (*_SHARED_SECRETS, settings.SQL_ALCHEMY_CONN),
            waits_for_db=True,
            waits_for_broker=False,
        ),
        Component(
            "scheduler",
            ("airflow", "scheduler"),
            (*_SHARED_SECRETS, settings.SQL_ALCHEMY_CONN, settings.BROKER_URL),
            waits_for_db=True,
            waits_for_broker=True,
        ),
        Component(
            "dag-processor",
            ("airflow", "dag-processor"),
            (*_SHARED_SECRETS, settings.SQL_ALCHEMY_CONN),
            waits_for_db=True,
            waits_for_broker=False,
        ),
        Component(
            "triggerer",
            ("airflow", "triggerer"),
            (*_SHARED_SECRETS, settings.SQL_ALCHEMY_CONN),
            waits_for_db=True,
            waits_for_broker=False,
            serves_logs=True,
        ),
        Component(
            "worker",
            ("airflow", "celery", "worker"),
            (*_SHARED_SECRETS, settings.BROKER_URL, settings.EXECUTION_API_SERVER_URL),
            waits_for_db=True,  # the Celery result backend is the metadata DB
            waits_for_broker=True,
            serves_logs=True,
        ),
        Component(
            "flower",
            # Plain Celery's Flower, not `airflow celery flower`: Flower needs the broker only, and
            # without Airflow imported it takes about 50 MiB instead of 135 (flower_environment).
            ("celery", "flower", "--address=0.0.0.0", f"--port={FLOWER_PORT}"),
            (settings.BROKER_URL,),
            waits_for_db=False,
            waits_for_broker=True,
            prepare_env=flower_environment,
        ),
        Component(
            "init",
            (),
            (*_SHARED_SECRETS, settings.SQL_ALCHEMY_CONN),
            waits_for_db=True,
            waits_for_broker=False,
        ),
        Component(
            "bootstrap",
            (),
            (settings.FERNET_KEY, settings.SQL_ALCHEMY_CONN),
            waits_for_db=True,
            waits_for_broker=False,
        ),
    )
}


def argv(component: Component, env: Mapping[str, str]) -> tuple[str, ...]:
    """The command the component execs, without its log server when AIRFLOW_STACK_SERVE_LOGS=false."""
    if component.serves_logs and not settings.boolean(env, settings.SERVE_LOGS, default=True):
        return (*component.argv, "--skip-serve-logs")
    return component.argv


def get(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise StackError(
            f"unknown component {name!r}",
            fix=f"use one of: {', '.join(COMPONENTS)}",
        ) from None
