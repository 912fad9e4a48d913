"""The task supervisor notices its task process's exit at once, not up to 5 s later.

Airflow's supervisor (in a Celery pool process) waits for its task process in a loop: it selects
on the process's sockets for up to `[workers] min_heartbeat_interval` (5 s), then checks whether
the process has exited. When the process closes its sockets on the way out but has not quite
exited at that check, the next select has no socket left to wait on and sleeps the whole 5 s.
On this stack's 2-core benchmark machine that hit about a quarter of no-op tasks: each held its
pool slot about 5 s instead of under 1 s.

Installed in the worker's main process before the pool forks (celery_hooks), this wraps the task
supervisor's `_service_subprocess`: with no socket left and no exit seen yet, it waits on the
process itself (returning as soon as it exits, within the same bound) and then lets Airflow's
method check the exit as usual (psutil keeps the exit code of a process it reaped), so exit
codes, their log lines and timeouts are Airflow's own.

It relies on Airflow internals; `incompatibilities()` lists what it relies on that this Airflow
does not have, and then `install()` leaves Airflow alone with a warning.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from airflow_stack.core import pins

SERVICE_PARAMETERS = ("self", "max_wait_time", "raise_on_timeout", "expect_signal")
FIELDS = ("selector", "_process", "_exit_code")


def incompatibilities() -> list[str]:
    """What the wrapper relies on that this Airflow does not have (empty when all is there)."""
    try:
        from airflow.sdk.execution_time.supervisor import ActivitySubprocess, PsutilTracker
    except ImportError as exc:
        return [f"cannot import what it wraps: {exc}"]
    problems = pins.takes(
        "ActivitySubprocess._service_subprocess",
        getattr(ActivitySubprocess, "_service_subprocess", None),
        SERVICE_PARAMETERS,
    )
    problems += pins.has_fields("ActivitySubprocess", ActivitySubprocess, FIELDS)
    if not all(hasattr(PsutilTracker, name) for name in ("wait", "TimeoutExpired")):
        problems.append("PsutilTracker no longer has wait and TimeoutExpired")
    # Airflow's check waits again after this wrapper's wait has reaped the process: psutil must
    # return the exit code it kept, not None.
    import psutil

    if "_exitcode" not in vars(psutil.Process(os.getpid())):
        problems.append("psutil.Process no longer keeps the exit code of a process it waited for")
    return problems


def wait_for_exit(subprocess: Any, max_wait_time: float) -> bool:
    """With no socket left to select on, wait on the process instead of sleeping; returns
    whether it did (the select that follows then has nothing to wait for)."""
    if subprocess._exit_code is not None or subprocess.selector.get_map():
        return False
    # TimeoutExpired (still running) or gone: Airflow's own check decides.
    with contextlib.suppress(Exception):
        subprocess._process.wait(timeout=max(max_wait_time, 0.01))
    return True


def install() -> str:
    """Wrap the task supervisor's wait in this process; returns what it did, for the worker's log."""
    if problems := incompatibilities():
        return "task exit: Airflow's own wait (up to 5 s after a task's exit), this Airflow differs: " + "; ".join(
            problems
        )
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    service = ActivitySubprocess._service_subprocess

    def service_subprocess(self, max_wait_time, raise_on_timeout=False, expect_signal=None):
        if wait_for_exit(self, max_wait_time):
            max_wait_time = 0  # the process was waited on; just check its exit
        return service(self, max_wait_time, raise_on_timeout=raise_on_timeout, expect_signal=expect_signal)

    ActivitySubprocess._service_subprocess = service_subprocess
    return "task exit: the supervisor waits on the task process once its sockets are closed"
