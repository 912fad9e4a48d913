"""A worker left behind by a deployment: its identity from a fake task metadata endpoint
(pytest-httpserver), its service and deployments in moto's ECS, and what it decides.

moto keeps only the PRIMARY deployment (a forced new deployment replaces its id) where ECS also
lists the old one as ACTIVE; the drain reads only the PRIMARY one, so both answer alike. moto's
deployment `runningCount` comes from MOTO_ECS_SERVICE_RUNNING.
"""

from __future__ import annotations

import json

import boto3
import pytest

from airflow_stack.worker import deploydrain
from airflow_stack.worker.deploydrain import Drainer, DrainError, EcsDeployments, cancel_consumers, task_metadata

CLUSTER = "staging-airflow-workers"


@pytest.fixture
def ecs(aws, monkeypatch):
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "1")
    client = boto3.client("ecs")
    client.create_cluster(clusterName=CLUSTER)
    client.register_task_definition(
        family="staging-airflow-worker",
        containerDefinitions=[{"name": "worker", "image": "airflow-stack:1", "memory": 512}],
    )
    client.create_service(
        cluster=CLUSTER, serviceName="worker", taskDefinition="staging-airflow-worker", desiredCount=1
    )
    return client


def primary_deployment(ecs) -> str:
    return ecs.describe_services(cluster=CLUSTER, services=["worker"])["services"][0]["deployments"][0]["id"]


def service_task(ecs, started_by: str, group: str = "service:worker") -> str:
    """A task as the service's deployment `started_by` would start it."""
    container = boto3.client("ec2").run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]
    document = {"instanceId": container["InstanceId"]}
    ecs.register_container_instance(cluster=CLUSTER, instanceIdentityDocument=json.dumps(document))
    started = ecs.run_task(
        cluster=CLUSTER, taskDefinition="staging-airflow-worker", startedBy=started_by, group=group, count=1
    )
    return started["tasks"][0]["taskArn"]


class Leave:
    def __init__(self, fail: int = 0):
        self.calls = 0
        self.fail = fail

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.fail:
            raise DrainError("no reply from celery@worker")
        return "stopped taking tasks from default"


def drainer_for(ecs, task: str, leave: Leave) -> Drainer:
    deployments = EcsDeployments()
    return Drainer(lambda: deployments.identify(CLUSTER, task), deployments, leave)


def test_a_worker_of_the_primary_deployment_keeps_its_queue(ecs):
    task = service_task(ecs, primary_deployment(ecs))
    leave = Leave()
    drainer = drainer_for(ecs, task, leave)
    assert "task of service worker, started by deployment ecs-svc/" in drainer.check()
    assert drainer.check() is None and drainer.check() is None
    assert leave.calls == 0 and not drainer.done


def test_a_worker_left_behind_by_a_new_deployment_leaves_its_queue_once(ecs):
    old = primary_deployment(ecs)
    task = service_task(ecs, old)
    leave = Leave()
    drainer = drainer_for(ecs, task, leave)
    drainer.check()
    ecs.update_service(cluster=CLUSTER, service="worker", forceNewDeployment=True)
    new = primary_deployment(ecs)
    assert new != old
    message = drainer.check()
    assert f"deployment {old} was replaced by {new}" in message and "stopped taking tasks from default" in message
    assert drainer.done and drainer.check() is None
    assert leave.calls == 1


def test_a_new_deployment_that_runs_no_task_yet_does_not_drain_the_old_workers(ecs, monkeypatch):
    monkeypatch.setenv("MOTO_ECS_SERVICE_RUNNING", "0")  # the new deployment's tasks are still starting
    ecs.create_service(cluster=CLUSTER, serviceName="worker-b", taskDefinition="staging-airflow-worker", desiredCount=1)
    task = service_task(ecs, "ecs-svc/1234", group="service:worker-b")  # not the primary deployment
    leave = Leave()
    drainer = drainer_for(ecs, task, leave)
    drainer.check()
    assert drainer.check() is None and leave.calls == 0 and not drainer.done


def test_a_task_not_started_by_a_service_is_left_alone(ecs):
    task = service_task(ecs, "manual", group="family:staging-airflow-worker")
    drainer = drainer_for(ecs, task, Leave())
    assert "not started by a service" in drainer.check()
    assert drainer.done and drainer.check() is None


def test_failures_are_reported_and_retried(ecs):
    old = primary_deployment(ecs)
    task = service_task(ecs, old)
    answers = iter([DrainError("GET http://169.254.170.2/v4/x/task failed: timed out")])
    deployments = EcsDeployments()

    def whoami():
        for error in answers:
            raise error
        return deployments.identify(CLUSTER, task)

    leave = Leave(fail=1)
    drainer = Drainer(whoami, deployments, leave)
    assert "timed out; retrying at the next check" in drainer.check()
    assert "started by deployment" in drainer.check()
    ecs.update_service(cluster=CLUSTER, service="worker", forceNewDeployment=True)
    assert "could not stop taking tasks (no reply from celery@worker); retrying" in drainer.check()
    assert "was replaced by" in drainer.check() and leave.calls == 2


def test_an_unknown_task_is_reported_with_its_cluster(ecs):
    drainer = drainer_for(ecs, f"arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/{'0' * 32}", Leave())
    assert f"does not know arn:aws:ecs:us-east-1:123456789012:task/{CLUSTER}/" in drainer.check()
    assert not drainer.done


def test_the_task_metadata_endpoint_gives_cluster_and_task(httpserver):
    httpserver.expect_request("/v4/abc/task").respond_with_json(
        {
            "Cluster": "arn:aws:ecs:us-east-1:1:cluster/c",
            "TaskARN": "arn:aws:ecs:us-east-1:1:task/c/t",
            "Containers": [],
        }
    )
    assert task_metadata(httpserver.url_for("/v4/abc")) == (
        "arn:aws:ecs:us-east-1:1:cluster/c",
        "arn:aws:ecs:us-east-1:1:task/c/t",
    )


def test_a_metadata_answer_without_the_fields_or_too_large_is_refused(httpserver, monkeypatch):
    httpserver.expect_request("/bad/task").respond_with_json({"Cluster": "c"})
    with pytest.raises(DrainError, match="no Cluster and TaskARN"):
        task_metadata(httpserver.url_for("/bad"))
    monkeypatch.setattr(deploydrain, "METADATA_LIMIT", 100)
    httpserver.expect_request("/big/task").respond_with_data("x" * 1000)
    with pytest.raises(DrainError, match="more than 100 bytes"):
        task_metadata(httpserver.url_for("/big"))


class FakeControl:
    def __init__(self, replies):
        self.replies = replies
        self.sent = []

    def cancel_consumer(self, queue, destination, reply, timeout):
        self.sent.append((queue, destination))
        return self.replies


class FakeApp:
    def __init__(self, replies):
        self.control = FakeControl(replies)


def test_cancel_consumers_addresses_only_this_worker_and_wants_its_confirmation():
    app = FakeApp([{"celery@a": {"ok": "no longer consuming from 'default'"}}])
    assert cancel_consumers(app, "celery@a", ["default"]) == "stopped taking tasks from default"
    assert app.control.sent == [("default", ["celery@a"])]
    with pytest.raises(DrainError, match="got no reply from celery@b"):
        cancel_consumers(FakeApp([]), "celery@b", ["default"])
    with pytest.raises(DrainError, match="error"):
        cancel_consumers(FakeApp([{"celery@c": {"error": "boom"}}]), "celery@c", ["default"])


def test_off_ecs_the_thread_does_not_start(monkeypatch):
    monkeypatch.delenv("ECS_CONTAINER_METADATA_URI_V4", raising=False)
    assert deploydrain.start(consumer=None) is None
