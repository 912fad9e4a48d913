"""The monitor on the running stack, with the `s3` profile's moto server as CloudWatch and DAGs
from dag-sync's releases (Stack.use_s3_logs, Stack.use_releases): with the worker stopped, a
run's first task is queued, and one sample publishes QueuedTasks and DesiredWorkers with the
right values to CloudWatch and to the log."""

from __future__ import annotations

import json

import pytest

from .conftest import RELEASE_DAG_ID as DAG_ID
from .conftest import Stack, finish, poll
from .conftest import trigger_release_probe as trigger

NAMESPACE = "AirflowStackE2E"


def cloudwatch_maximum(stack: Stack, metric: str) -> list[float]:
    query = (
        "import boto3, datetime, json\n"
        "c = boto3.client('cloudwatch', endpoint_url='http://127.0.0.1:5000', region_name='us-east-1',"
        " aws_access_key_id='x', aws_secret_access_key='x')\n"
        "now = datetime.datetime.now(datetime.timezone.utc)\n"
        f"r = c.get_metric_statistics(Namespace='{NAMESPACE}', MetricName='{metric}',"
        " Dimensions=[{'Name': 'Stack', 'Value': 'e2e'}], StartTime=now - datetime.timedelta(minutes=10),"
        " EndTime=now + datetime.timedelta(minutes=1), Period=60, Statistics=['Maximum'])\n"
        "print(json.dumps([p['Maximum'] for p in r['Datapoints']]))\n"
    )
    return json.loads(stack.run("exec", "-T", "s3", "/opt/moto/bin/python", "-c", query).stdout)


@pytest.fixture(scope="module")
def stack(stack: Stack) -> Stack:
    stack.use_s3_logs()
    stack.use_releases()
    return stack


def test_monitor_publishes_queued_tasks_to_cloudwatch(stack: Stack):
    stack.run("stop", "worker")
    try:
        with stack.api() as api:
            run_id = trigger(api)
            first = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/first"
            poll(
                "first task queued",
                lambda: api.get(first).json().get("state") == "queued",
                90,
                lambda: stack.logs("scheduler"),
            )
            result = stack.run(
                "run",
                "--rm",
                "--no-deps",
                "-e",
                "AIRFLOW_STACK_MONITOR_SINKS=log,cloudwatch",
                "-e",
                f"AIRFLOW_STACK_MONITOR_NAMESPACE={NAMESPACE}",
                "-e",
                "AIRFLOW_STACK_MONITOR_STACK=e2e",
                "-e",
                "AIRFLOW_STACK_CLOUDWATCH_ENDPOINT_URL=http://s3:5000",
                "monitor",
                "monitor",
                "--once",
                timeout=120,
            )
            assert "QueuedTasks=1 " in result.stderr and "DesiredWorkers=1 " in result.stderr, result.stderr
            assert "QueuedTasks[default]=1" in result.stderr and "SchedulerHeartbeatAge=" in result.stderr
            assert "DagReleaseAge=" in result.stderr
            assert cloudwatch_maximum(stack, "QueuedTasks") == [1.0]
            assert cloudwatch_maximum(stack, "DesiredWorkers") == [1.0]
    finally:
        stack.run("start", "worker")
    with stack.api() as api:
        finish(stack, api, run_id)
