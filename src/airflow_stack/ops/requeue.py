"""Returns to their queue the Celery messages of a worker that died before it started their task.

Airflow's workers acknowledge a task's message when the task ends (`[celery] task_acks_late`).
Until then Redis keeps the message in its `unacked` hash, whoever took it. When a worker dies
(SIGKILL, an out-of-memory kill, a stopped ECS task), what it held stays there until the
broker's visibility timeout (a day, Airflow's default) and a task it had taken but not started
stays `queued` until the scheduler's `[scheduler] task_queued_timeout` (600 s) sends it again.

The monitor calls `Requeuer.sweep` after each sample (AIRFLOW_STACK_REQUEUE, on by default):

1. read the `unacked` hash: every message some worker took and did not finish;
2. ask the live workers, with one `query_task` broadcast, which of those messages they hold
   (Celery lists a message there from the moment the worker receives it, whether it waits
   for a free process or runs);
3. a message that no live worker held in two or more sweeps spanning AIRFLOW_STACK_REQUEUE_AFTER
   seconds (60) belongs to a dead worker. What happens to it depends on its task instance in
   the metadata database:
   - `queued` (the task never started): the message goes back to its queue (kombu's own
     `restore_by_tag`, which does nothing if the message was acknowledged meanwhile) and the
     next free worker runs it;
   - `running`: left alone. The dead worker's task stops heartbeating; the scheduler fails it
     after `[scheduler] task_instance_heartbeat_timeout` and retries it as a new try;
   - anything else, or gone (finished, or a later try has a new task instance id): the message
     is dropped; nothing could run it.

   A message that runs no task instance (not Airflow's `execute_workload`) is left alone.

Why a returned message cannot make a task run twice at the same time: a message is returned
only while its task instance is `queued`, and a task runs only after the execution API moved
its task instance from `queued` to `running`. That move reads the row `FOR UPDATE` and refuses
(409) any other state, so of two workers holding the same message one starts the task and the
other is refused; the Celery provider then drops its copy without recording a failure
(`TaskAlreadyRunningError`). A slow or partitioned worker that still holds a returned message
therefore costs one refused start, never a second run.

Reads are bounded: the sweep reads the hash of taken messages, which holds at most what the
workers' prefetch allows, and never logs a message's body (it carries the task's token).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from airflow_stack.core import metadb, settings
from airflow_stack.core.errors import log

QUERY_TIMEOUT = 5.0  # seconds the live workers have to answer the broadcast
QUEUE_SCAN_LIMIT = 20_000  # messages read from one queue in one sweep, at most


@dataclass(frozen=True)
class Taken:
    """A message some worker took and has not acknowledged."""

    tag: str  # kombu's delivery tag: the key in the unacked hash
    task_id: str  # the Celery task id: what workers list it by
    queue: str
    ti_id: str | None  # the task instance its workload runs; None when it runs none
    label: str  # dag.task[map_index] try N, for the log


def read_taken(tag: str, raw: bytes | str) -> Taken | None:
    """One entry of the unacked hash (`[message, exchange, routing_key]`); None if unreadable."""
    try:
        message, _exchange, routing_key = json.loads(raw)
        task_id = message["headers"]["id"]
        ti = _workload_ti(message)
    except (ValueError, TypeError, KeyError):
        return None
    if ti is None:
        return Taken(tag, task_id, routing_key, None, message["headers"].get("task", "?"))
    index = ti.get("map_index", -1)
    label = f"{ti.get('dag_id')}.{ti.get('task_id')}{'' if index in (-1, None) else f'[{index}]'}"
    return Taken(tag, task_id, routing_key, str(ti["id"]), f"{label} try {ti.get('try_number')}")


def _workload_ti(message: Mapping) -> Mapping | None:
    """The task instance of Airflow's `execute_workload` message (protocol 2: the body is
    `[args, kwargs, embed]` and args[0] the workload's JSON)."""
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    args = json.loads(body)[0]
    if not args or not isinstance(args[0], str):
        return None
    ti = json.loads(args[0]).get("ti")
    return ti if isinstance(ti, Mapping) and "id" in ti else None


class Broker(Protocol):
    def taken(self) -> list[Taken]: ...
    def held(self, task_ids: list[str]) -> set[str]: ...
    def restore(self, tag: str) -> None: ...
    def drop(self, tag: str) -> None: ...


@dataclass
class Requeuer:
    broker: Broker
    states: Callable[[list[str]], dict[str, str]]  # task instance id -> state (absent: gone)
    after: float
    clock: Callable[[], float] = time.monotonic
    # tag -> (first sweep that saw it unheld, sweeps since)
    unheld: dict[str, tuple[float, int]] = field(default_factory=dict)
    told_running: set[str] = field(default_factory=set)  # reported once, not every sweep

    def sweep(self) -> dict[str, list[str]]:
        """One pass; returns {"returned"|"dropped"|"running": [labels]} for what was due."""
        taken = {t.tag: t for t in self.broker.taken()}
        held = self.broker.held(sorted({t.task_id for t in taken.values()})) if taken else set()
        now = self.clock()
        for tag in [tag for tag in self.unheld if tag not in taken or taken[tag].task_id in held]:
            del self.unheld[tag]
        self.told_running &= self.unheld.keys()
        due: list[Taken] = []
        for tag, message in taken.items():
            if message.task_id in held or message.ti_id is None:
                continue
            since, sweeps = self.unheld.get(tag, (now, 0))
            self.unheld[tag] = (since, sweeps + 1)
            if sweeps + 1 >= 2 and now - since >= self.after:
                due.append(message)
        outcome: dict[str, list[str]] = {"returned": [], "dropped": [], "running": []}
        if not due:
            return outcome
        states = self.states([m.ti_id for m in due if m.ti_id])
        for message in due:
            state = states.get(message.ti_id or "")
            if state == "queued":
                self.broker.restore(message.tag)
                outcome["returned"].append(message.label)
            elif state == "running":
                if message.tag not in self.told_running:
                    self.told_running.add(message.tag)
                    outcome["running"].append(message.label)
                continue
            else:
                self.broker.drop(message.tag)
                outcome["dropped"].append(f"{message.label} ({state or 'gone'})")
            del self.unheld[message.tag]
        return outcome


class CeleryBroker:
    """The Redis broker through Celery and kombu, as the workers see it."""

    def __init__(self, url: str, timeout: float = QUERY_TIMEOUT):
        from celery import Celery

        self.app = Celery("airflow-stack-requeue", broker=url, set_as_current=False)
        self.timeout = timeout

    def _channel_do(self, action: Callable) -> object:
        with self.app.connection_for_write() as connection:
            return action(connection.default_channel)

    def taken(self) -> list[Taken]:
        entries = self._channel_do(lambda channel: channel.client.hgetall(channel.unacked_key))
        messages = (read_taken(_text(tag), raw) for tag, raw in entries.items())
        return [m for m in messages if m is not None]

    def taken_ids(self) -> set[str]:
        return {m.task_id for m in self.taken()}

    def waiting(
        self, queues: Iterable[str], limit: int = QUEUE_SCAN_LIMIT, page: int = 500
    ) -> tuple[set[str], set[str]]:
        """The task ids of the messages waiting in `queues` (every priority's list), and the
        queues longer than `limit`, which are not read."""

        def read(channel) -> tuple[set[str], set[str]]:
            ids: set[str] = set()
            too_long: set[str] = set()
            for queue in queues:
                keys = [channel._q_for_pri(queue, pri) for pri in channel.priority_steps]
                if sum(channel.client.llen(key) for key in keys) > limit:
                    too_long.add(queue)
                    continue
                for key in keys:
                    for start in range(0, limit, page):
                        chunk = channel.client.lrange(key, start, start + page - 1)
                        ids.update(filter(None, map(_message_id, chunk)))
                        if len(chunk) < page:
                            break
            return ids, too_long

        return self._channel_do(read)

    def held(self, task_ids: list[str]) -> set[str]:
        replies = self.app.control.inspect(timeout=self.timeout).query_task(*task_ids) or {}
        return {task_id for reply in replies.values() for task_id in (reply or {})}

    def restore(self, tag: str) -> None:
        self._channel_do(lambda channel: channel.qos.restore_by_tag(tag))

    def drop(self, tag: str) -> None:
        self._channel_do(lambda channel: channel.qos.reject(tag, requeue=False))


def _message_id(raw: bytes | str) -> str | None:
    """The Celery task id of a message in a queue's list (protocol 2 keeps it in the headers)."""
    try:
        return json.loads(raw)["headers"]["id"]
    except (ValueError, TypeError, KeyError):
        return None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def database_states(env: Mapping[str, str]) -> Callable[[list[str]], dict[str, str]]:
    def states(ids: list[str]) -> dict[str, str]:
        conn = metadb.connect(env)
        try:
            return metadb.task_instance_states(conn, ids)
        finally:
            conn.close()

    return states


def from_env(env: Mapping[str, str]) -> Requeuer | None:
    """The monitor's requeuer, or None when AIRFLOW_STACK_REQUEUE is false."""
    if not settings.REQUEUE.read(env):
        return None
    broker = CeleryBroker(settings.BROKER_URL.raw(env) or "")
    return Requeuer(broker, database_states(env), settings.REQUEUE_AFTER.read(env))


def report(outcome: Mapping[str, Iterable[str]], after: float) -> None:
    if returned := list(outcome.get("returned", ())):
        log(f"requeue: no live worker held these messages for {after:g} s; their tasks never started, "
            f"so they are back in their queue: {', '.join(returned)}")  # fmt: skip
    if dropped := list(outcome.get("dropped", ())):
        log(f"requeue: dropped messages no live worker holds, of task instances no longer queued: {', '.join(dropped)}")
    if running := list(outcome.get("running", ())):
        log(
            "requeue: no live worker holds the messages of these running tasks; left to "
            f"[scheduler] task_instance_heartbeat_timeout: {', '.join(running)}"
        )
