"""Finding queued tasks whose Celery message the broker lost, against a stand-in broker and
database: which are handed to the scheduler, which are left alone, and when (Redis losing its
data for real is in tests/e2e/test_faults.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from airflow_stack.ops import lostqueued, requeue

QUEUED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def queued(ti_id: str, task_id: str, *, queue: str = "default", at: datetime = QUEUED_AT) -> lostqueued.Queued:
    return lostqueued.Queued(ti_id, task_id, queue, at, f"d.{ti_id} try 1")


@dataclass
class StandInBroker:
    waiting_ids: set[str] = field(default_factory=set)
    taken: set[str] = field(default_factory=set)
    holding: set[str] = field(default_factory=set)
    too_long: set[str] = field(default_factory=set)
    reads: int = 0

    def waiting(self, queues):
        self.reads += 1
        return set(self.waiting_ids), set(self.too_long) & set(queues)

    def taken_ids(self):
        return set(self.taken)

    def held(self, task_ids):
        return self.holding & set(task_ids)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class StandInDatabase:
    instances: list[lostqueued.Queued]
    expired: list[str] = field(default_factory=list)
    left_queued: set[str] = field(default_factory=set)  # ids that left that queuing meanwhile

    def queued(self, older_than: float):
        return list(self.instances)

    def expire(self, instance: lostqueued.Queued) -> bool:
        if instance.ti_id in self.left_queued:
            return False
        self.expired.append(instance.ti_id)
        return True


def finder(broker: StandInBroker, database: StandInDatabase):
    clock = Clock()
    return lostqueued.LostFinder(broker, database.queued, database.expire, 60, clock), clock


def test_a_queued_task_whose_message_is_nowhere_is_handed_after_two_sweeps_spanning_the_wait():
    database = StandInDatabase([queued("ti-1", "c1")])
    lost, clock = finder(StandInBroker(), database)
    assert lost.sweep()["handed"] == []
    clock.now += 59
    assert lost.sweep()["handed"] == []
    clock.now += 1
    assert lost.sweep()["handed"] == ["d.ti-1 try 1"]
    assert database.expired == ["ti-1"]


def test_a_message_waiting_in_its_queue_taken_or_held_by_a_live_worker_is_not_lost():
    database = StandInDatabase([queued("ti-1", "c1"), queued("ti-2", "c2"), queued("ti-3", "c3")])
    lost, clock = finder(StandInBroker(waiting_ids={"c1"}, taken={"c2"}, holding={"c3"}), database)
    for _ in range(5):
        assert lost.sweep()["handed"] == []
        clock.now += 60
    assert database.expired == [] and lost.missing == {}


def test_a_message_found_again_restarts_the_wait():
    broker = StandInBroker()
    database = StandInDatabase([queued("ti-1", "c1")])
    lost, clock = finder(broker, database)
    lost.sweep()
    clock.now += 30
    broker.waiting_ids.add("c1")  # restored to its queue between two reads
    lost.sweep()
    broker.waiting_ids.clear()
    clock.now += 30
    assert lost.sweep()["handed"] == []
    clock.now += 60
    assert lost.sweep()["handed"] == ["d.ti-1 try 1"]


def test_a_task_queued_again_is_a_new_queuing_and_waits_again():
    database = StandInDatabase([queued("ti-1", "c1")])
    lost, clock = finder(StandInBroker(), database)
    lost.sweep()
    clock.now += 60
    database.instances = [queued("ti-1", "c1b", at=datetime(2026, 11, 30, 12, 5, tzinfo=UTC))]
    assert lost.sweep()["handed"] == []
    clock.now += 60
    assert lost.sweep()["handed"] == ["d.ti-1 try 1"]


def test_a_task_that_left_queued_before_the_update_is_not_reported():
    database = StandInDatabase([queued("ti-1", "c1")], left_queued={"ti-1"})
    lost, clock = finder(StandInBroker(), database)
    lost.sweep()
    clock.now += 60
    assert lost.sweep()["handed"] == [] and database.expired == []


def test_a_queue_too_long_to_read_is_left_to_airflow_and_said_once():
    database = StandInDatabase([queued("ti-1", "c1", queue="big")])
    lost, clock = finder(StandInBroker(too_long={"big"}), database)
    assert lost.sweep()["too_long"] == ["big"]
    clock.now += 60
    assert lost.sweep() == {"handed": [], "too_long": []}
    assert database.expired == []


def test_no_queued_task_reads_nothing_from_the_broker():
    broker = StandInBroker()
    lost, _ = finder(broker, StandInDatabase([]))
    assert lost.sweep() == {"handed": [], "too_long": []}
    assert broker.reads == 0


def test_the_scheduler_timeout_is_read_from_the_environment_or_airflows_default():
    assert lostqueued.queued_timeout({"AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300"}) == 300
    assert lostqueued.queued_timeout({}) == 600
    assert lostqueued.queued_timeout({"AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "soon"}) == 600


class ListsChannel:
    """kombu's Redis channel as `waiting` uses it: a list per queue and priority."""

    sep = "\x06\x16"
    priority_steps = [0, 3, 6, 9]

    def __init__(self, lists: dict[str, list[bytes]]):
        self.lists = lists
        self.client = self

    def _q_for_pri(self, queue: str, pri: int) -> str:
        return f"{queue}{self.sep}{pri}" if pri else queue

    def llen(self, key: str) -> int:
        return len(self.lists.get(key, []))

    def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        return self.lists.get(key, [])[start : end + 1]


def message(task_id: str) -> bytes:
    return json.dumps({"body": "...", "headers": {"id": task_id, "task": "execute_workload"}}).encode()


def test_the_broker_reads_every_priority_list_page_by_page_and_skips_a_queue_too_long():
    channel = ListsChannel(
        {
            "default": [message(f"c{i}") for i in range(7)] + [b"not json"],
            "default\x06\x163": [message("urgent")],
            "big": [message(f"b{i}") for i in range(11)],
        }
    )
    broker = requeue.CeleryBroker.__new__(requeue.CeleryBroker)
    broker._channel_do = lambda action: action(channel)
    ids, too_long = broker.waiting(["default", "big"], limit=10, page=3)
    assert ids == {f"c{i}" for i in range(7)} | {"urgent"}
    assert too_long == {"big"}
