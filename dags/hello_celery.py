"""Example DAG shipped with the stack: two tasks run on a Celery worker and pass an XCom.

The end-to-end test triggers it and checks the worker's hostname and the XCom value.
"""

from __future__ import annotations

import socket

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "airflow-stack"],
)
def hello_celery():
    @task
    def where_am_i() -> str:
        hostname = socket.getfqdn()
        print(f"running on worker {hostname}")
        return hostname

    @task
    def greet(hostname: str) -> str:
        greeting = f"hello from {hostname}"
        print(greeting)
        return greeting

    greet(where_am_i())


hello_celery()
