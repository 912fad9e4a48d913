"""Airflow's log server is imported only by a component that starts it.

The scheduler's, the triggerer's and the Celery worker's commands each enter a `_serve_logs`
context that imports Airflow's log server (`airflow.utils.serve_logs`: uvicorn, FastAPI and an
ASGI-to-WSGI bridge) before deciding whether to start it. The local stack runs without log
servers (`AIRFLOW_STACK_SERVE_LOGS=false`: the triggerer and the worker get `--skip-serve-logs`),
and a scheduler whose executors are all Celery never starts one; each of these processes still
carried the import: 8.7 MiB and 176 modules (measured in the scheduler's container, in a process
that had imported the scheduler's modules), inherited by the worker's pool and the triggerer's
runner.

`install(component)`, called in the component's process before Airflow's command runs in it (the
component table's `installs`: `scheduler`, `triggerer`, `worker`), wraps its command's context:
when the log server is skipped (and, for the scheduler, when none of its executors serves logs,
which is the question Airflow's own context asks) nothing is imported and nothing starts;
otherwise Airflow's context runs as it is.

It relies on Airflow internals; `incompatibilities(component)` lists what this Airflow lacks of
them, and then `install()` leaves the command alone and says so in the component's log.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from airflow_stack.core import pins

# Each command's module, and whether its own context also asks the executors (the scheduler's).
COMMANDS = {
    "scheduler": ("airflow.cli.commands.scheduler_command", True),
    "triggerer": ("airflow.cli.commands.triggerer_command", False),
    "worker": ("airflow.providers.celery.cli.celery_command", False),
}
IMPORT_LINE = "from airflow.utils.serve_logs import serve_logs"
SKIP_LINE = "if skip_serve_logs is False:"
EXECUTORS_LINE = "executor_class.serve_logs"


def incompatibilities(component: str) -> list[str]:
    """What this relies on that this Airflow does not have in `component`'s command (empty when
    all is there)."""
    name, asks_executors = COMMANDS[component]
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        return [f"cannot import {name}: {exc}"]
    where = f"{name.rpartition('.')[2]}._serve_logs"
    context = getattr(module, "_serve_logs", None)
    if context is None:
        return [f"{where} is gone"]
    context = inspect.unwrap(context)  # Airflow's generator, under its contextmanager (and ours)
    if tuple(inspect.signature(context).parameters) != ("skip_serve_logs",):
        return [f"{where} no longer takes skip_serve_logs alone"]
    lines = (IMPORT_LINE, SKIP_LINE, EXECUTORS_LINE) if asks_executors else (IMPORT_LINE, SKIP_LINE)
    return pins.has_lines(where, context, lines)


def no_executor_serves_logs() -> bool:
    """What the scheduler's own context asks before it starts a log server, without importing it."""
    from airflow.executors.executor_loader import ExecutorLoader

    names = ExecutorLoader.get_executor_names()
    return not any(ExecutorLoader.import_executor_cls(name)[0].serve_logs for name in names)


def lazy(serve_logs: Callable[..., Any], skipped: Callable[[], bool]) -> Callable[..., Any]:
    """Airflow's `_serve_logs` context, entered only when the log server may start."""

    @contextlib.contextmanager
    def _serve_logs(skip_serve_logs: bool = False) -> Iterator[None]:
        if skip_serve_logs or skipped():
            yield
            return
        with serve_logs(skip_serve_logs):
            yield

    _serve_logs.__wrapped__ = serve_logs
    _serve_logs.airflow_stack_lazy = True
    return _serve_logs


def install(component: str) -> str:
    """Wrap `component`'s `_serve_logs`; returns what it did, for the component's log."""
    if problems := incompatibilities(component):
        return f"log server: imported at start (Airflow's own), this Airflow differs: {'; '.join(problems)}"
    name, asks_executors = COMMANDS[component]
    module = importlib.import_module(name)
    if not getattr(module._serve_logs, "airflow_stack_lazy", False):
        module._serve_logs = lazy(module._serve_logs, no_executor_serves_logs if asks_executors else lambda: False)
    return "log server: imported only if this component starts one"


# The component table's installs (called with the environment).
def scheduler(env: Mapping[str, str] | None = None) -> str:
    return install("scheduler")


def triggerer(env: Mapping[str, str] | None = None) -> str:
    return install("triggerer")


def worker(env: Mapping[str, str] | None = None) -> str:
    return install("worker")
