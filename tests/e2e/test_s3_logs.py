"""Task logs in S3 (the `s3` profile's moto server; Stack.use_s3_logs) with the log servers on, as
on ECS: a running task's log comes from its worker's log server; with remote logging on, a task's
log stays readable through the REST API after its worker container is gone, the object is in the
bucket at the expected key, and a missing bucket stops a component."""

from __future__ import annotations

import pytest

from airflow_stack.host.stackwait import read_states

from .conftest import DAG_ID, Stack, poll, running_greet_log, trigger_and_wait, wait_for_run
from .conftest import S3_BUCKET as BUCKET
from .conftest import S3_PREFIX as PREFIX


@pytest.fixture(scope="module")
def s3_stack(stack: Stack) -> Stack:
    stack.use_s3_logs()
    return stack


def bucket_keys(stack: Stack) -> list[str]:
    listing = (
        "import boto3\n"
        "c = boto3.client('s3', endpoint_url='http://127.0.0.1:5000', region_name='us-east-1',"
        " aws_access_key_id='x', aws_secret_access_key='x')\n"
        f"print('\\n'.join(o['Key'] for o in c.list_objects_v2(Bucket='{BUCKET}').get('Contents', [])))\n"
    )
    return stack.run("exec", "-T", "s3", "/opt/moto/bin/python", "-c", listing).stdout.split()


def test_components_probed_the_bucket_at_start(s3_stack: Stack):
    for service in ("api-server", "worker", "triggerer"):
        assert f"remote logging: wrote and deleted s3://{BUCKET}/{PREFIX}/.airflow-stack-probe/" in s3_stack.logs(
            service
        ), service


def test_a_running_task_log_is_served_by_the_worker(s3_stack: Stack):
    with s3_stack.api() as api:
        run_id, events = running_greet_log(s3_stack, api)
        # Among the sources: the worker's log server, reached with the shared [api] secret_key.
        served = f"http://{s3_stack.container_hostname('worker')}:8793/log/dag_id={DAG_ID}/"
        assert any(event.startswith(served) for event in events), events[:5]
        assert not any("Could not read served logs" in event for event in events), events[:5]
        assert any("hello from" in event for event in events)
        wait_for_run(s3_stack, api, run_id)


def test_task_log_is_read_from_s3_after_the_worker_is_gone(s3_stack: Stack):
    with s3_stack.api() as api:
        run_id = trigger_and_wait(s3_stack, api)
    key = f"{PREFIX}/dag_id={DAG_ID}/run_id={run_id}/task_id=greet/attempt=1.log"
    # The worker uploads a task's log after it has reported the task's state: poll for it.
    poll(f"{key} uploaded", lambda: key in bucket_keys(s3_stack), 60, lambda: s3_stack.logs("worker"))

    s3_stack.run("rm", "--stop", "--force", "worker")
    assert "worker" not in {s.service for s in read_states(s3_stack.compose)}
    with s3_stack.api() as api:
        log = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/greet/logs/1")
    assert log.status_code == 200, log.text
    events = [entry.get("event", "") for entry in log.json()["content"]]
    assert f"s3://{BUCKET}/{key}" in events, events[:5]
    assert any("hello from" in event for event in events)
    s3_stack.run("up", "-d", "worker")


def test_a_missing_bucket_stops_the_component_naming_it(s3_stack: Stack):
    result = s3_stack.run(
        "run",
        "--rm",
        "--no-deps",
        "-e",
        "AIRFLOW_STACK_LOGS_S3_URL=s3://no-such-bucket/logs",
        "triggerer",
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "the task-log bucket 'no-such-bucket' does not exist" in result.stderr, result.stderr[-2000:]
    assert "AIRFLOW_STACK_LOGS_S3_URL" in result.stderr
