"""Example DAG shipped with the stack: two tasks run on a Celery worker and pass an XCom.

The end-to-end tests trigger it and check the worker's hostname and the XCom value. The
`seconds` param keeps `greet` running that long after it printed its greeting, so the log of a
running task (served by the worker on port 8793) can be read.
"""

from __future__ import annotations

import socket
import time

import pendulum
from airflow.sdk import Param, dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "airflow-stack"],
    params={"seconds": Param(0, type="integer", minimum=0, maximum=600, description="how long greet runs")},
)
def hello_celery():
    @task
    def where_am_i() -> str:
        hostname = socket.getfqdn()
        print(f"running on worker {hostname}")
        return hostname

    @task
    def greet(hostname: str, params=None) -> str:
        greeting = f"hello from {hostname}"
        print(greeting, flush=True)
        if seconds := int(params["seconds"]):
            print(f"staying busy for {seconds} s", flush=True)
            time.sleep(seconds)
        return greeting

    greet(where_am_i())


hello_celery()
