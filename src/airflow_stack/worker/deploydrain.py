"""A worker left behind by a deployment of its ECS service stops taking tasks, so ECS can stop it.

`make workers` with a new image or settings starts a new deployment of the worker service; ECS
then stops the old deployment's tasks, but not while they hold scale-in protection, which a busy
worker does (scaleprotect). An old worker that kept taking new tasks would stay busy, and the
deployment might not end for hours. So on ECS a thread of the worker's main process checks,
every AIRFLOW_STACK_DEPLOYMENT_CHECK seconds (30):

1. once, which task it is: the cluster and task ARN from the task metadata endpoint
   (`$ECS_CONTAINER_METADATA_URI_V4/task`), then DescribeTasks for its service (`group`,
   `service:NAME`) and the deployment that started it (`startedBy` holds the deployment's id);
2. at each check, DescribeServices: the service's PRIMARY deployment.

When the primary deployment is another one and already runs at least one task (a new image that
cannot start leaves the old workers serving; the circuit breaker rolls it back), the worker
cancels its consumers with Celery's `cancel_consumer` control command, addressed to itself. It
takes no new message, finishes what it holds (running and prefetched), and then holds nothing:
scale-in protection turns off and ECS stops it with a SIGTERM that finds it idle. Messages still
in the queue go to the new deployment's workers; nothing is handed back or lost.

Outside ECS (no ECS_CONTAINER_METADATA_URI_V4), for a task not started by a service, or with an
invalid setting, it does nothing and says so once. A failed call is logged and retried at the
next check: leaving a replaced deployment is a courtesy to the deployment, never a condition for
running tasks.
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError, log
from airflow_stack.worker import periodic

METADATA_LIMIT = 1 << 20  # the task metadata document is a few KiB


class DrainError(Exception):
    pass


@dataclass(frozen=True)
class Identity:
    """Which service task this worker is, and which deployment started it."""

    cluster: str
    task: str
    service: str | None  # None: not started by a service
    deployment: str


def task_metadata(metadata_uri: str, timeout: float = 5) -> tuple[str, str]:
    """(cluster, task ARN) from the ECS task metadata endpoint v4."""
    url = f"{metadata_uri.rstrip('/')}/task"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(METADATA_LIMIT + 1)
    except (OSError, urllib.error.URLError) as exc:
        raise DrainError(f"GET {url} failed: {exc}") from None
    if len(body) > METADATA_LIMIT:
        raise DrainError(f"GET {url} answered more than {METADATA_LIMIT} bytes")
    try:
        document = json.loads(body)
        return str(document["Cluster"]), str(document["TaskARN"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DrainError(f"GET {url} answered no Cluster and TaskARN ({exc!r})") from None


class EcsDeployments:
    """The two ECS calls: which deployment started a task, and which deployment is primary."""

    def __init__(self, endpoint_url: str | None = None, client: Any = None):
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
            client = boto3.client("ecs", endpoint_url=endpoint_url, config=config)
        self.client = client

    def identify(self, cluster: str, task: str) -> Identity:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            tasks = self.client.describe_tasks(cluster=cluster, tasks=[task])["tasks"]
        except (BotoCoreError, ClientError) as exc:
            raise DrainError(f"DescribeTasks for {task} failed: {exc}") from None
        if not tasks:
            raise DrainError(f"DescribeTasks does not know {task} in cluster {cluster}")
        group = tasks[0].get("group", "")
        service = group.removeprefix("service:") if group.startswith("service:") else None
        return Identity(cluster, task, service, tasks[0].get("startedBy", ""))

    def primary(self, cluster: str, service: str) -> tuple[str, int]:
        """(id, running tasks) of the service's PRIMARY deployment."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            services = self.client.describe_services(cluster=cluster, services=[service])["services"]
        except (BotoCoreError, ClientError) as exc:
            raise DrainError(f"DescribeServices for {service} failed: {exc}") from None
        for deployment in services[0].get("deployments", []) if services else []:
            if deployment.get("status") == "PRIMARY":
                return deployment["id"], int(deployment.get("runningCount", 0))
        raise DrainError(f"DescribeServices shows no PRIMARY deployment of {service} in cluster {cluster}")


class Drainer:
    """Decides when this worker leaves its queues; `leave` does it (Celery's cancel_consumer)."""

    def __init__(
        self,
        whoami: Callable[[], Identity],
        deployments: EcsDeployments,
        leave: Callable[[], str],
    ):
        self.whoami = whoami
        self.deployments = deployments
        self.leave = leave
        self.identity: Identity | None = None
        self.done = False  # left its queues, or not a service task: nothing more to check

    def check(self) -> str | None:
        """One check; returns what it found or did, or None when nothing changed."""
        if self.done:
            return None
        try:
            if self.identity is None:
                self.identity = self.whoami()
                if self.identity.service is None:
                    self.done = True
                    return f"deployment drain: off (task {self.identity.task} was not started by a service)"
                return (
                    f"deployment drain: task of service {self.identity.service}, "
                    f"started by deployment {self.identity.deployment}"
                )
            primary, running = self.deployments.primary(self.identity.cluster, self.identity.service)
        except DrainError as exc:
            return f"deployment drain: {exc}; retrying at the next check"
        if primary == self.identity.deployment or running < 1:
            return None
        try:
            left = self.leave()
        except Exception as exc:  # noqa: BLE001 - any failure: retry at the next check
            return f"deployment drain: could not stop taking tasks ({exc}); retrying at the next check"
        self.done = True
        return (
            f"deployment drain: deployment {self.identity.deployment} was replaced by {primary} "
            f"({running} task(s) running); {left}; the tasks held finish here, then ECS may stop this worker"
        )


def cancel_consumers(app: Any, hostname: str, queues: Sequence[str], timeout: float = 10) -> str:
    """Celery's `cancel_consumer` for each queue, to this worker only; raises unless it confirms."""
    for queue in queues:
        replies = app.control.cancel_consumer(queue, destination=[hostname], reply=True, timeout=timeout)
        answer = next((reply[hostname] for reply in replies or () if hostname in reply), None)
        if not answer or "ok" not in answer:
            raise DrainError(f"cancel_consumer {queue!r} got {answer or 'no reply'} from {hostname}")
    return f"stopped taking tasks from {', '.join(queues)}"


def start(consumer: Any) -> threading.Thread | None:
    """The thread, for the Celery consumer `consumer` (worker_ready's sender); None off ECS."""
    try:
        metadata = settings.ECS_CONTAINER_METADATA_URI_V4.read(os.environ)
        if not metadata:
            log("deployment drain: off (not on ECS: no ECS_CONTAINER_METADATA_URI_V4)")
            return None
        interval = settings.DEPLOYMENT_CHECK.read(os.environ)
        endpoint = settings.ECS_ENDPOINT_URL.read(os.environ)
    except StackError as exc:
        log(f"deployment drain: off, a setting is invalid: {exc.problem} (fix: {exc.fix})")
        return None
    queues = sorted(q.name for q in consumer.task_consumer.queues)
    hostname = consumer.hostname

    def whoami() -> Identity:
        return deployments.identify(*task_metadata(metadata))

    deployments = EcsDeployments(endpoint)
    drainer = Drainer(whoami, deployments, lambda: cancel_consumers(consumer.app, hostname, queues))

    thread = periodic.start("deployment drain", interval, drainer.check, lambda: drainer.done)
    log(f"deployment drain: checking every {interval:g} s whether {hostname} was left behind by a deployment")
    return thread


def connect_to_celery() -> None:
    """Start the thread in the worker's main process once it is ready (Celery signal)."""
    from celery.signals import worker_ready

    worker_ready.connect(lambda sender, **_: start(sender), weak=False)
