"""Sizes the ECS worker services from the monitor's samples: the workers' autoscaling on AWS.

The monitor's `ecs` sink (AIRFLOW_STACK_MONITOR_SINKS) finds the worker services of the cluster
AIRFLOW_STACK_WORKERS_CLUSTER by their tags, which the workers stack sets once per service:

    airflow-stack:queue               the Celery queue the service's workers consume (default)
    airflow-stack:min-workers         MinWorkers
    airflow-stack:max-workers         MaxWorkers
    airflow-stack:worker-concurrency  [celery] worker_concurrency of those workers
    airflow-stack:scale-in-minutes    ScaleInIdleMinutes: how long the need must stay lower
                                      before workers are removed

For each service, every sample:

    need   = ceil((queued + running task instances of its queue) / worker_concurrency)
    target = the largest need over the last scale-in-minutes, within [min, max]

and `UpdateService(desiredCount=target)` when the service's desired count differs.

- Scale-out is immediate and, as the count is absolute rather than an increment, a Fargate
  start that takes minutes never makes it add workers twice: the count never exceeds what the
  queue needs (or min).
- Scale-in waits for the need to stay lower for the whole window. ECS then stops only tasks
  without scale-in protection, which a worker holds while it has a task
  (airflow_stack.worker.scaleprotect): only idle workers go.
- A sample that fails (database down) sets nothing, and a monitor that dies leaves the count
  where it was: silence is never read as "no work". The monitor's silence has an alarm of its own.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError, log

TAG = "airflow-stack:"


@dataclass(frozen=True)
class Pool:
    """One worker service and its sizing, from its tags."""

    service: str  # its ARN
    name: str
    queue: str
    minimum: int
    maximum: int
    concurrency: int
    scale_in_after: float
    desired: int  # the service's desired count now


class Cluster(Protocol):
    def pools(self) -> list[Pool]: ...
    def set_desired(self, service: str, count: int) -> None: ...


def need(queued: int, running: int, concurrency: int) -> int:
    return math.ceil((queued + running) / max(1, concurrency))


@dataclass
class Scaler:
    cluster: Cluster
    clock: Callable[[], float] = time.monotonic
    needs: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)

    def target(self, pool: Pool, now_need: int) -> int:
        """Record this sample's need and return the count the pool should have."""
        now = self.clock()
        history = self.needs.setdefault(pool.service, deque())
        history.append((now, now_need))
        while history and history[0][0] < now - pool.scale_in_after:
            history.popleft()
        return min(pool.maximum, max(pool.minimum, max(n for _, n in history)))

    def step(self, queued: Mapping[str, int], running: Mapping[str, int]) -> list[str]:
        """One sample's counts per queue; returns what changed, for the log."""
        changes = []
        for pool in self.cluster.pools():
            wanted = self.target(pool, need(queued.get(pool.queue, 0), running.get(pool.queue, 0), pool.concurrency))
            if wanted != pool.desired:
                self.cluster.set_desired(pool.service, wanted)
                changes.append(f"{pool.name} ({pool.queue}): {pool.desired} -> {wanted} workers")
        return changes


class EcsCluster:
    """The worker services of one ECS cluster, through the ECS API (the monitor's task role)."""

    def __init__(self, name: str, endpoint_url: str | None = None):
        import boto3

        self.name = name
        self.client = boto3.client("ecs", endpoint_url=endpoint_url)

    def pools(self) -> list[Pool]:
        arns = [
            arn
            for page in self.client.get_paginator("list_services").paginate(cluster=self.name)
            for arn in page["serviceArns"]
        ]
        pools = []
        for start in range(0, len(arns), 10):  # DescribeServices takes up to 10 services
            described = self.client.describe_services(
                cluster=self.name, services=arns[start : start + 10], include=["TAGS"]
            )
            for service in described["services"]:
                tags = {t["key"][len(TAG) :]: t["value"] for t in service.get("tags", []) if t["key"].startswith(TAG)}
                if "max-workers" not in tags:
                    continue  # not a worker service this stack sizes
                pools.append(
                    Pool(
                        service=service["serviceArn"],
                        name=service["serviceName"],
                        queue=tags.get("queue", "default"),
                        minimum=int(tags.get("min-workers", "0")),
                        maximum=int(tags["max-workers"]),
                        concurrency=int(tags.get("worker-concurrency", "16")),
                        scale_in_after=60 * float(tags.get("scale-in-minutes", "10")),
                        desired=service["desiredCount"],
                    )
                )
        return pools

    def set_desired(self, service: str, count: int) -> None:
        self.client.update_service(cluster=self.name, service=service, desiredCount=count)


def ecs_sink(env: Mapping[str, str]) -> Callable:
    """The monitor's `ecs` sink: sizes the worker services of AIRFLOW_STACK_WORKERS_CLUSTER."""
    cluster = settings.WORKERS_CLUSTER.read(env)
    if not cluster:
        raise StackError(
            "the monitor's ecs sink has no cluster to size",
            setting=settings.WORKERS_CLUSTER.name,
            fix="set it to the workers cluster's name, or drop `ecs` from AIRFLOW_STACK_MONITOR_SINKS",
        )
    scaler = Scaler(EcsCluster(cluster, settings.ECS_ENDPOINT_URL.read(env)))

    def send(sample) -> None:
        for change in scaler.step(sample.queued, sample.running):
            log(f"scaler: {change}")

    return send
