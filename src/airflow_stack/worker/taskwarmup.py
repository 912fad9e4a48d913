"""Imports, once in the Celery worker's main process, the modules every task process would
otherwise import afresh.

Airflow forks each task from a Celery pool process, and the task runner then needs the
DAG-parsing machinery (`airflow.dag_processing.dagbag`: about 0.14 s of CPU to import) and the
@task decorators, which Airflow's own preloading leaves out. Imported here, before the pool
forks, they are inherited by every pool process and task (and their memory shared), including
the pool processes an autoscaled pool starts later. A module missing from a future Airflow is
skipped with a warning, never fatal.

The task SDK's HTTP client is built once here too: Airflow caches its TLS context per process
(made even for a plain-HTTP execution API: about 1.1 MiB and 13 ms of CPU), so without this each
pool process would make its own for its first task.

Each pool process asks the kernel, as it starts, to be killed should the main process die
(billiard's `set_pdeathsig`). billiard declares `prctl` through cffi whenever cffi is installed
(cryptography needs it), and a process's first cffi declaration builds pycparser's C parser: about
7 MiB that every pool process wrote for itself. Built here once (billiard's `get_pdeathsig`, which
declares the same function and only reads the setting), the parser is inherited and shared, and a
pool process's declaration is a one-line parse.

The main process's objects stay frozen for the garbage collector (`gc.freeze`) for its whole
life. Airflow freezes them only until the worker is ready, which is enough for a fixed pool; but
an autoscaled pool forks processes later, and each one's first collection would then write to
(and so copy) every page of the inherited heap: about 50 MiB more per pool process. Pool
processes never unfreeze what they inherit (`gc.unfreeze` would release all of it at once).
"""

from __future__ import annotations

import gc
import importlib
import logging

log = logging.getLogger(__name__)

MODULES = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.sdk.definitions.decorators",
    "airflow.providers.standard.decorators.python",
    "airflow.plugins_manager",
)


def import_task_modules(modules: tuple[str, ...] = MODULES) -> list[str]:
    """Import each module; returns the ones that could not be imported."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.warning("task warm-up: cannot import %s (%s); tasks will import what they need", name, exc)
            missing.append(name)
    return missing


def warm_api_client() -> bool:
    """Build (and close) one task SDK client, which caches its TLS context; False if it could not."""
    try:
        from airflow.sdk.api.client import Client

        Client(base_url="http://warm-up.invalid/execution/", token="warm-up").close()
    except Exception as exc:  # noqa: BLE001 - a warm-up must never stop the worker
        log.warning("task warm-up: cannot build the task API client (%r); each pool process builds its own", exc)
        return False
    return True


def warm_parent_death_signal() -> bool:
    """Build, once, what each pool process needs to set its parent-death signal; False if it could not."""
    try:
        from billiard.util import get_pdeathsig

        get_pdeathsig()
    except Exception as exc:  # noqa: BLE001 - a warm-up must never stop the worker
        log.warning("task warm-up: cannot read the parent-death signal (%r); each pool process builds its own", exc)
        return False
    return True


def freeze_heap(**_: object) -> None:
    """Keep what exists now out of the collector's reach, so forked pool processes share it."""
    gc.freeze()


def connect_to_celery() -> None:
    from celery.signals import worker_ready

    # Runs after Airflow's own worker_ready receiver (connected earlier), which unfreezes.
    worker_ready.connect(freeze_heap, weak=False)
