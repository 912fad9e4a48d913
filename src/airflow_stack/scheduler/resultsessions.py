"""The scheduler reads Celery's task results over a pooled connection, not a new one per read.

With a database result backend (the stack's: `db+postgresql://...`, the metadata DB), the Celery
executor reads the states of the tasks it has sent in every scheduler loop that has tasks
running (Airflow's `BulkStateFetcher`, through the backend's `ResultSession()`). Celery's session
manager gives a process that has not forked a new SQLAlchemy engine without a pool for every
session (the pool is meant for its worker's pool processes, which fork from their parent), so
each read built an engine and opened, authenticated and closed a PostgreSQL connection: 7.2 ms
of the scheduler's CPU and a new PostgreSQL server process, against 0.8 ms over a pooled
connection (measured in the scheduler's container).

`install()`, called in the scheduler's process before Airflow's command runs in it, lets that
process keep one engine per database URL with its pool, as Celery does after a fork:

- with `pool_pre_ping` (unless the backend's engine options say otherwise), so that a connection
  PostgreSQL has closed (a restart, a failover) is replaced before it is used;
- a process it forks (the executor sends tasks from a process pool when `[celery]
  sync_parallelism` is above 1) starts with no engine of its own, and keeps the inherited ones
  referenced, so that it never closes the connections its parent still uses.

It relies on Celery's and Airflow's internals; `incompatibilities()` lists what they lack, and then
`install()` changes nothing and says so in the scheduler's log.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from airflow_stack.core import pins

# Celery's session manager: a cached engine per URL once `forked` is set.
GET_ENGINE_LINES = ("if self.forked:", "self._engines[dburi]")
# Airflow's executor reads results through the backend's session.
FETCH_LINE = "self.celery_app.backend.ResultSession()"

_managers: list[Any] = []  # the session managers this process pooled
_inherited: list[Any] = []  # in a forked child: the parent's engines, never closed here


def incompatibilities() -> list[str]:
    """What this relies on that this Celery or Airflow does not have (empty when all is there)."""
    try:
        from airflow.providers.celery.executors.celery_executor_utils import BulkStateFetcher
        from celery.backends.database.session import SessionManager
    except ImportError as exc:
        return [f"cannot import what it wraps: {exc}"]
    problems = pins.takes("SessionManager.get_engine", SessionManager.get_engine, ("self", "dburi", "kwargs"))
    problems += pins.has_lines("SessionManager.get_engine", SessionManager.get_engine, GET_ENGINE_LINES)
    problems += pins.has_lines("SessionManager.create_session", SessionManager.create_session, ("if self.forked:",))
    fetch = getattr(BulkStateFetcher, "_query_task_cls_from_db_backend", None)
    problems += pins.has_lines("BulkStateFetcher._query_task_cls_from_db_backend", fetch, (FETCH_LINE,))
    return problems


def after_fork_in_child() -> None:
    """A forked child keeps its parent's engines referenced (so their connections are never
    closed from here) and builds its own when it needs one."""
    for manager in _managers:
        _inherited.extend(manager._engines.values())
        manager._engines, manager._sessions = {}, {}


def pooled(get_engine: Any) -> Any:
    def get_pooled_engine(self: Any, dburi: str, **kwargs: Any) -> Any:
        if not self.forked:
            self.forked = True  # this process keeps its engine and pool, as a forked one does
            _managers.append(self)
        return get_engine(self, dburi, **{"pool_pre_ping": True, **kwargs})

    get_pooled_engine.__wrapped__ = get_engine
    return get_pooled_engine


def install(env: Mapping[str, str] | None = None) -> str:
    """Pool this process's result-backend sessions; returns what it did, for the scheduler's log."""
    if problems := incompatibilities():
        return "Celery results: a new connection per read (Celery's own), this Celery or Airflow differs: " + (
            "; ".join(problems)
        )
    from celery.backends.database.session import SessionManager

    if not hasattr(SessionManager.get_engine, "__wrapped__"):
        SessionManager.get_engine = pooled(SessionManager.get_engine)
        os.register_at_fork(after_in_child=after_fork_in_child)
    return "Celery results: read over a pooled connection (pre-pinged), not a new one per read"
