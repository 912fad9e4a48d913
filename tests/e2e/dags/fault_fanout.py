"""Used by tests/e2e/test_faults.py: many independent tasks in flight at once, so that a fault
(a worker killed, Redis restarted, ...) hits running and queued tasks alike.

params: `tasks` mapped tasks, each sleeping `seconds`; each task returns where it ran.
"""

import socket
import time

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=64,
    params={"tasks": Param(32, type="integer", minimum=1), "seconds": Param(10, type="integer", minimum=0)},
    # A task whose worker is killed is failed by the heartbeat timeout and retried.
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=2)},
)
def fault_fanout():
    @task
    def plan(params=None) -> list[int]:
        return list(range(int(params["tasks"])))

    @task
    def work(i: int, params=None) -> str:
        time.sleep(int(params["seconds"]))
        return socket.gethostname()

    work.expand(i=plan())


fault_fanout()
