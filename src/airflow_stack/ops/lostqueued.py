"""Hands back to the scheduler the queued task instances whose Celery message the broker lost.

Redis can lose messages: a restart without its append-only file, an ElastiCache failover that
drops the last writes, a flushed database. A task instance whose message is gone stays `queued`
until Airflow's `[scheduler] task_queued_timeout` (600 s) passes; the scheduler then revokes it
and schedules it again (its "stuck in queued" check, every
`[scheduler] task_queued_timeout_check_interval`, 120 s).

The monitor calls `LostFinder.sweep` after each sample (with AIRFLOW_STACK_REQUEUE):

1. the task instances `queued` for at least AIRFLOW_STACK_REQUEUE_AFTER seconds (60), with their
   Celery task id (Airflow assigns it, `external_executor_id`, when it queues the task);
2. those whose message is in none of these places is missing: its queue's lists in Redis (one
   per priority), the `unacked` hash of taken messages, a live worker (one `query_task`
   broadcast). They are read in the order a message moves, so a message cannot pass from a
   place not yet read to one already read;
3. a task instance missing in two or more sweeps spanning AIRFLOW_STACK_REQUEUE_AFTER seconds,
   still queued by the same queuing, is handed to the scheduler: its `queued_dttm` is moved back
   past `task_queued_timeout`, in one UPDATE that does nothing if the task instance left
   `queued` or was queued again meanwhile. The scheduler's next stuck-in-queued check revokes
   and reschedules it, counted against Airflow's own limit of two such requeues.

The scheduler does the recovery; this module only tells it sooner. A task instance whose
message merely waits in a long queue is found in the queue's list and left alone. A queue
longer than QUEUE_SCAN_LIMIT messages is not read, and its task instances are left to Airflow's
timeout (reported once). Message bodies are never logged (they carry the task's token).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from airflow_stack.core import metadb, settings
from airflow_stack.core.errors import log
from airflow_stack.ops.requeue import QUEUE_SCAN_LIMIT

AIRFLOW_QUEUED_TIMEOUT = 600.0  # Airflow's default `[scheduler] task_queued_timeout`


@dataclass(frozen=True)
class Queued:
    """A task instance in state `queued`, as the metadata database has it."""

    ti_id: str
    task_id: str  # the Celery task id of its message
    queue: str
    queued_at: datetime  # its `queued_dttm`: which queuing this is
    label: str  # dag.task[map_index] try N, for the log


class Broker(Protocol):
    def waiting(self, queues: Iterable[str]) -> tuple[set[str], set[str]]:
        """(task ids of the messages waiting in these queues, queues too long to read)."""

    def taken_ids(self) -> set[str]: ...
    def held(self, task_ids: list[str]) -> set[str]: ...


@dataclass
class LostFinder:
    broker: Broker
    queued: Callable[[float], list[Queued]]  # queued for at least N seconds
    expire: Callable[[Queued], bool]  # hand to the scheduler; False if it left that queuing
    after: float
    clock: Callable[[], float] = time.monotonic
    missing: dict[tuple[str, datetime], tuple[float, int]] = field(default_factory=dict)
    told_too_long: set[str] = field(default_factory=set)

    def sweep(self) -> dict[str, list[str]]:
        """One pass; returns {"handed": [labels], "too_long": [queues]} for what was new."""
        outcome: dict[str, list[str]] = {"handed": [], "too_long": []}
        candidates = self.queued(self.after)
        if not candidates:
            self.missing.clear()
            return outcome
        waiting, too_long = self.broker.waiting(sorted({c.queue for c in candidates}))
        taken = self.broker.taken_ids()
        present = waiting | taken
        unseen = [c for c in candidates if c.queue not in too_long and c.task_id not in present]
        held = self.broker.held(sorted({c.task_id for c in unseen})) if unseen else set()
        now = self.clock()
        lost = {(c.ti_id, c.queued_at): c for c in unseen if c.task_id not in held}
        for key in [key for key in self.missing if key not in lost]:
            del self.missing[key]
        for key, instance in lost.items():
            since, sweeps = self.missing.get(key, (now, 0))
            self.missing[key] = (since, sweeps + 1)
            if sweeps + 1 >= 2 and now - since >= self.after:
                if self.expire(instance):
                    outcome["handed"].append(instance.label)
                del self.missing[key]
        outcome["too_long"] = sorted(too_long - self.told_too_long)
        self.told_too_long = set(too_long)
        return outcome


def queued_timeout(env: Mapping[str, str]) -> float:
    """Airflow's `[scheduler] task_queued_timeout`, as this image configures it (environment)."""
    raw = env.get("AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT", "").strip()
    try:
        return float(raw) if raw else AIRFLOW_QUEUED_TIMEOUT
    except ValueError:
        return AIRFLOW_QUEUED_TIMEOUT


def database(env: Mapping[str, str]) -> tuple[Callable[[float], list[Queued]], Callable[[Queued], bool]]:
    timeout = queued_timeout(env)

    def queued(older_than: float) -> list[Queued]:
        conn = metadb.connect(env)
        try:
            return [Queued(*row) for row in metadb.queued_task_instances(conn, older_than)]
        finally:
            conn.close()

    def expire(instance: Queued) -> bool:
        conn = metadb.connect(env)
        try:
            return metadb.backdate_queued(conn, instance.ti_id, instance.queued_at, timeout + 1)
        finally:
            conn.close()

    return queued, expire


def from_env(env: Mapping[str, str], broker: Broker) -> LostFinder | None:
    """The monitor's finder, or None when AIRFLOW_STACK_REQUEUE is false."""
    if not settings.REQUEUE.read(env):
        return None
    queued, expire = database(env)
    return LostFinder(broker, queued, expire, settings.REQUEUE_AFTER.read(env))


def report(outcome: Mapping[str, Iterable[str]], after: float) -> None:
    if handed := list(outcome.get("handed", ())):
        log(
            f"requeue: the broker lost the messages of these queued tasks (in no queue, taken by no worker, "
            f"for {after:g} s); handed to the scheduler's [scheduler] task_queued_timeout check, which "
            f"queues them again: {', '.join(handed)}"
        )
    if too_long := list(outcome.get("too_long", ())):
        log(
            f"requeue: queues longer than {QUEUE_SCAN_LIMIT} messages are not searched for lost messages; "
            f"their tasks wait for [scheduler] task_queued_timeout if the broker loses them: {', '.join(too_long)}"
        )
