"""The requeue sweep against a stand-in broker: which taken messages go back to their queue,
which are dropped or left alone, and when (the real Redis, Celery and worker are in
tests/e2e/test_faults.py)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from airflow_stack.ops import requeue


def unacked_entry(task_id: str, ti_id: str, *, map_index: int = -1, queue: str = "default") -> str:
    """An entry of kombu's unacked hash for Airflow's execute_workload, as the Redis transport writes it."""
    workload = {
        "token": "secret-token",
        "ti": {"id": ti_id, "dag_id": "d", "task_id": "t", "run_id": "r", "try_number": 1, "map_index": map_index},
        "dag_rel_path": "d.py",
        "type": "ExecuteTask",
    }
    body = json.dumps([[json.dumps(workload)], {}, {"callbacks": None, "errbacks": None, "chain": None}])
    message = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": "execute_workload", "id": task_id},
        "properties": {
            "correlation_id": task_id,
            "delivery_tag": f"tag-{task_id}",
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": queue},
        },
    }
    return json.dumps([message, "", queue])


def test_an_entry_names_its_task_instance_queue_and_celery_id():
    taken = requeue.read_taken("tag-1", unacked_entry("c1", "ti-1", map_index=3, queue="gpu"))
    assert taken == requeue.Taken("tag-1", "c1", "gpu", "ti-1", "d.t[3] try 1")
    assert requeue.read_taken("tag-1", unacked_entry("c1", "ti-1")).label == "d.t try 1"


def test_an_unreadable_entry_or_one_without_a_task_instance_is_not_acted_on():
    assert requeue.read_taken("tag", b"not json") is None
    assert requeue.read_taken("tag", json.dumps([{"headers": {}}, "", "default"])) is None
    other = json.loads(unacked_entry("c1", "ti-1"))
    other[0]["body"] = base64.b64encode(json.dumps([[1, 2], {}, {}]).encode()).decode()
    assert requeue.read_taken("tag", json.dumps(other)).ti_id is None


@dataclass
class StandInBroker:
    entries: dict[str, str] = field(default_factory=dict)  # tag -> unacked entry
    holding: set[str] = field(default_factory=set)  # celery ids the live workers hold
    queue: list[str] = field(default_factory=list)
    broadcasts: int = 0

    def taken(self):
        return [requeue.read_taken(tag, raw) for tag, raw in self.entries.items()]

    def held(self, task_ids):
        self.broadcasts += 1
        return self.holding & set(task_ids)

    def restore(self, tag):
        self.queue.append(tag)
        del self.entries[tag]

    def drop(self, tag):
        del self.entries[tag]


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def sweeper(broker: StandInBroker, states: dict[str, str], after: float = 60):
    clock = Clock()
    return requeue.Requeuer(broker, lambda ids: {i: states[i] for i in ids if i in states}, after, clock), clock


def test_a_message_no_live_worker_holds_goes_back_only_after_two_sweeps_spanning_the_wait():
    broker = StandInBroker({"tag-c1": unacked_entry("c1", "ti-1")})
    requeuer, clock = sweeper(broker, {"ti-1": "queued"})
    assert requeuer.sweep()["returned"] == []
    clock.now += 59
    assert requeuer.sweep()["returned"] == []
    clock.now += 1
    assert requeuer.sweep()["returned"] == ["d.t try 1"]
    assert broker.queue == ["tag-c1"] and broker.entries == {}


def test_a_message_a_live_worker_holds_is_never_returned_and_holding_it_again_restarts_the_wait():
    broker = StandInBroker({"tag-c1": unacked_entry("c1", "ti-1")}, holding={"c1"})
    requeuer, clock = sweeper(broker, {"ti-1": "queued"})
    for _ in range(5):
        assert requeuer.sweep()["returned"] == []
        clock.now += 60
    broker.holding.clear()  # missed one broadcast
    requeuer.sweep()
    clock.now += 30
    broker.holding.add("c1")  # and answered the next
    requeuer.sweep()
    broker.holding.clear()
    clock.now += 30
    assert requeuer.sweep()["returned"] == []  # the wait starts again
    clock.now += 60
    assert requeuer.sweep()["returned"] == ["d.t try 1"]


def test_a_running_task_is_left_to_the_heartbeat_timeout_and_said_once():
    broker = StandInBroker({"tag-c1": unacked_entry("c1", "ti-1")})
    requeuer, clock = sweeper(broker, {"ti-1": "running"})
    requeuer.sweep()
    clock.now += 60
    assert requeuer.sweep()["running"] == ["d.t try 1"]
    clock.now += 30
    assert requeuer.sweep() == {"returned": [], "dropped": [], "running": []}
    assert "tag-c1" in broker.entries and broker.queue == []


def test_a_message_of_a_finished_or_gone_task_instance_is_dropped_not_returned():
    broker = StandInBroker({"tag-c1": unacked_entry("c1", "ti-1"), "tag-c2": unacked_entry("c2", "ti-2")})
    requeuer, clock = sweeper(broker, {"ti-1": "success"})
    requeuer.sweep()
    clock.now += 60
    assert sorted(requeuer.sweep()["dropped"]) == ["d.t try 1 (gone)", "d.t try 1 (success)"]
    assert broker.entries == {} and broker.queue == []


def test_an_acknowledged_message_is_forgotten_and_nothing_taken_asks_no_worker():
    broker = StandInBroker({"tag-c1": unacked_entry("c1", "ti-1")})
    requeuer, clock = sweeper(broker, {"ti-1": "queued"})
    requeuer.sweep()
    broker.entries.clear()  # the worker finished and acknowledged it
    clock.now += 60
    assert requeuer.sweep()["returned"] == [] and requeuer.unheld == {}
    assert broker.broadcasts == 1
