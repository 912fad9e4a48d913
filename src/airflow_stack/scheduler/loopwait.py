"""The scheduler looks again soon after it queued tasks or saw tasks end, while tasks are in flight.

Airflow's scheduler loop sleeps `[scheduler] scheduler_idle_sleep_time` (1 s) after every loop
that queued no task and processed no executor event. While a DAG run's tasks run, the run is
often held by `max_active_tasks` (16 by default, one worker's slots) or by the executor's
`parallelism`, and its next tasks are queued only when the loop wakes up after some have ended.
On a 100-task fan-out the worker sat idle for about 0.7 s of every 1.2 s.

`install()`, called in the scheduler's process before Airflow's command runs in it (the component
table's `installs`), can change how long that sleep is, only while an executor holds tasks
(queued or running), when `AIRFLOW_STACK_SCHEDULER_RECHECK` is above 0 (it is 0, off, by
default):

- after a loop that queued tasks or processed events, the next idle sleep is that many seconds;
- each idle loop after that doubles it, up to Airflow's idle sleep, where it stays;
- with no task in flight, the sleep is Airflow's, so an idle scheduler costs what it did.

A task that runs for an hour thus costs a few short loops after its start, not an hour of them.
Why it is off: on the 2-core CI machine, where the scheduler shares the CPU with the worker, 0.5 s
gave 14.8 tasks/s against 11.8 on a 100-task fan-out in one series, and 10.8 against 10.9 (the
median of 9 runs each, taken in turns) in another, for 1.8 times the scheduler's CPU during the
runs. It pays where the scheduler has CPU of its own and tasks are short.

It relies on Airflow internals; `incompatibilities()` lists what this Airflow lacks, and then
`install()` changes nothing and says so in the scheduler's log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_stack.core import pins, settings

# The scheduler's loop reads the idle sleep from this attribute, only where it sleeps.
SLEEP_LINE = "time.sleep(min(self._scheduler_idle_sleep_time, next_event or 0))"
# What a loop did: tasks queued, executor events processed (both counts).
COUNTERS = (("_do_scheduling", ("self", "session")), ("_process_executor_events", ("self", "executor", "session")))
# An executor's tasks in flight: sent and not yet ended, or queued for sending.
EXECUTOR_LINES = ("self.queued_tasks: dict[", "self.running: set[")


class Backoff:
    """The idle sleep after activity: `first`, then doubled on each idle loop, up to `configured`."""

    def __init__(self, first: float, configured: float):
        self.first, self.configured = first, configured
        self.next = configured

    def activity(self) -> None:
        self.next = min(self.first, self.configured)

    def sleep(self, in_flight: bool) -> float:
        if not in_flight:
            self.next = self.configured
            return self.configured
        wait, self.next = self.next, min(self.next * 2, self.configured)
        return wait


def in_flight(runner: Any) -> bool:
    """Whether any of the scheduler's executors holds a task that is queued or running."""
    return any(executor.running or executor.queued_tasks for executor in runner.executors)


class IdleSleep:
    """Stands for the runner's `_scheduler_idle_sleep_time`: what Airflow sets is the ceiling; what
    its loop reads is the backoff's next sleep."""

    def __init__(self, first: float):
        self.first = first

    def __set__(self, runner: Any, configured: float) -> None:
        runner.__dict__["_stack_backoff"] = Backoff(self.first, float(configured))

    def __get__(self, runner: Any, owner: type | None = None) -> Any:
        if runner is None:
            return self
        return runner.__dict__["_stack_backoff"].sleep(in_flight(runner))


def incompatibilities() -> list[str]:
    """What this relies on that this Airflow does not have (empty when all is there)."""
    try:
        from airflow.executors.base_executor import BaseExecutor
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    except ImportError as exc:
        return [f"cannot import what it wraps: {exc}"]
    loop = getattr(SchedulerJobRunner, "_run_scheduler_loop", None)
    problems = pins.has_lines("SchedulerJobRunner._run_scheduler_loop", loop, (SLEEP_LINE,))
    problems += pins.has_lines(
        "SchedulerJobRunner.__init__", SchedulerJobRunner.__init__, ("self._scheduler_idle_sleep_time = ",)
    )
    for method, parameters in COUNTERS:
        problems += pins.takes(f"SchedulerJobRunner.{method}", getattr(SchedulerJobRunner, method, None), parameters)
    problems += pins.has_lines("BaseExecutor.__init__", BaseExecutor.__init__, EXECUTOR_LINES)
    return problems


def install(env: Mapping[str, str]) -> str:
    """Put the backoff in this process's scheduler; returns what it did, for the scheduler's log."""
    first = settings.SCHEDULER_RECHECK.read(env)
    if first <= 0:
        return "scheduler loop: Airflow's idle sleep throughout (AIRFLOW_STACK_SCHEDULER_RECHECK=0)"
    if problems := incompatibilities():
        return "scheduler loop: Airflow's idle sleep throughout, this Airflow differs: " + "; ".join(problems)
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    for method, _ in COUNTERS:
        setattr(SchedulerJobRunner, method, _counting(getattr(SchedulerJobRunner, method)))
    SchedulerJobRunner._scheduler_idle_sleep_time = IdleSleep(first)
    return (
        f"scheduler loop: while tasks are in flight, looks again {first:g} s after it queued tasks or saw "
        "tasks end, doubling up to [scheduler] scheduler_idle_sleep_time"
    )


def _counting(method: Any) -> Any:
    def counted(self: Any, *args: Any, **kwargs: Any) -> int:
        done = method(self, *args, **kwargs)
        if done and (backoff := self.__dict__.get("_stack_backoff")):
            backoff.activity()
        return done

    counted.__wrapped__ = method
    return counted
