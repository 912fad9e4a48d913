"""The task supervisor's first heartbeat comes one heartbeat interval after the task's start,
not straight after it.

Airflow's supervisor (in a Celery pool process) tells the execution API that the task starts
(`ti_run`, which records the task as running on this host and process, with a fresh heartbeat
time) and then, in its first pass of the wait loop, sends a heartbeat at once: it has sent none
yet, so `[workers] min_heartbeat_interval` (5 s) has "passed". That heartbeat writes the same
heartbeat time again and checks what `ti_run` has just checked (state, host, process): one of a
short task's four calls to the api-server, with its database update, for nothing.

Installed in the worker's main process before the pool forks (celery_hooks), this marks the
start as the last heartbeat attempt once `ti_run` succeeded, so the next heartbeat goes
`min_heartbeat_interval` later and every one after it as in Airflow. A task that runs longer
is watched exactly as before: the scheduler fails a task only after
`[scheduler] task_instance_heartbeat_timeout` (120 s here) without one.

It relies on Airflow internals; `incompatibilities()` lists what it relies on that this Airflow
does not have, and then `install()` leaves Airflow alone with a warning.
"""

from __future__ import annotations

import time
from typing import Any

from airflow_stack.core import pins

STARTED_PARAMETERS = ("self", "ti", "dag_rel_path", "bundle_info", "sentry_integration")
FIELDS = ("_last_heartbeat_attempt", "_last_successful_heartbeat")
# The lines of Airflow's supervisor this relies on: the start counts as a heartbeat, and the
# next heartbeat waits for the interval after the last attempt.
USES = (
    ("_on_child_started", "self._last_successful_heartbeat = time.monotonic()"),
    ("_send_heartbeat_if_needed", "(time.monotonic() - self._last_heartbeat_attempt) < MIN_HEARTBEAT_INTERVAL"),
)


def incompatibilities() -> list[str]:
    """What the wrapper relies on that this Airflow does not have (empty when all is there)."""
    try:
        from airflow.sdk.execution_time.supervisor import ActivitySubprocess
    except ImportError as exc:
        return [f"cannot import what it wraps: {exc}"]
    problems = pins.takes(
        "ActivitySubprocess._on_child_started",
        getattr(ActivitySubprocess, "_on_child_started", None),
        STARTED_PARAMETERS,
    )
    problems += pins.has_fields("ActivitySubprocess", ActivitySubprocess, FIELDS)
    for method, line in USES:
        problems += pins.has_lines(f"ActivitySubprocess.{method}", getattr(ActivitySubprocess, method, None), (line,))
    return problems


def mark_started(subprocess: Any) -> None:
    """Count the task's start as its latest heartbeat attempt."""
    subprocess._last_heartbeat_attempt = time.monotonic()


def install() -> str:
    """Wrap the supervisor's start in this process; returns what it did, for the worker's log."""
    if problems := incompatibilities():
        return "first heartbeat: Airflow's own (sent at once after the start), this Airflow differs: " + "; ".join(
            problems
        )
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    on_child_started = ActivitySubprocess._on_child_started

    def on_child_started_then_wait(self, **kwargs):
        on_child_started(self, **kwargs)  # raises (and kills the task) when ti_run fails
        mark_started(self)

    ActivitySubprocess._on_child_started = on_child_started_then_wait
    return "first heartbeat: one heartbeat interval after the task's start"
