"""What each Airflow component runs, which secrets it needs and what it waits for.

This table is the single place that maps a component name (as used by `airflow-stack run`,
the compose file and the ECS task definitions) to the Airflow command it execs.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_stack import settings
from airflow_stack.errors import StackError
from airflow_stack.settings import Setting

API_SERVER_PORT = 8080
SCHEDULER_HEALTH_PORT = 8974
FLOWER_PORT = 5555

_SHARED_SECRETS = (settings.FERNET_KEY, settings.JWT_SECRET, settings.API_SECRET_KEY)


@dataclass(frozen=True)
class Component:
    name: str
    argv: tuple[str, ...]  # empty: one-shot jobs run in-process (init, bootstrap)
    required: tuple[Setting, ...]
    waits_for_db: bool
    waits_for_broker: bool


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
        ),
        Component(
            "worker",
            ("airflow", "celery", "worker"),
            (*_SHARED_SECRETS, settings.BROKER_URL, settings.EXECUTION_API_SERVER_URL),
            waits_for_db=True,  # the Celery result backend is the metadata DB
            waits_for_broker=True,
        ),
        Component(
            "flower",
            ("airflow", "celery", "flower"),
            (settings.BROKER_URL,),
            waits_for_db=False,
            waits_for_broker=True,
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


def get(name: str) -> Component:
    try:
        return COMPONENTS[name]
    except KeyError:
        raise StackError(
            f"unknown component {name!r}",
            fix=f"use one of: {', '.join(COMPONENTS)}",
        ) from None
