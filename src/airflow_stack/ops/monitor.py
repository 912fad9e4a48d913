"""The `monitor` component: the numbers that scale the workers and tell when the stack is sick.

Every AIRFLOW_STACK_MONITOR_INTERVAL seconds (30) it reads, without importing Airflow:

    QueuedTasks            task instances handed to Celery and not started (total and per queue)
    RunningTasks           task instances running (total and per queue)
    DesiredWorkers         ceil((queued + running) / [celery] worker_concurrency): the workers
                           needed so that no task waits; the workers' autoscaling target
    SchedulerHeartbeatAge  seconds since the newest running scheduler heartbeated
    DagReleaseAge          seconds since dag-sync activated the live DAG release (release mode)
    OldestQueuedTaskAge    seconds the longest-queued task instance has waited (0: none queued)

and sends one sample to each sink of AIRFLOW_STACK_MONITOR_SINKS (comma-separated):

    log         one line per sample on stderr (the default)
    prometheus  gauges at http://:AIRFLOW_STACK_MONITOR_PROMETHEUS_PORT/metrics (9108)
    cloudwatch  PutMetricData in AIRFLOW_STACK_MONITOR_NAMESPACE (AirflowStack), with the
                dimension Stack=AIRFLOW_STACK_MONITOR_STACK (and Queue= for per-queue values)
    ecs         the desired count of each worker service of AIRFLOW_STACK_WORKERS_CLUSTER
                (airflow_stack.ops.scaler: the workers' autoscaling on AWS)

After each sample it returns to their queue the messages a dead worker had taken and not
started (requeue), and hands to the scheduler the queued tasks whose message the broker lost
(lostqueued); AIRFLOW_STACK_REQUEUE turns both off.

`airflow-stack monitor --once` takes and sends one sample. A sample that fails (database down) is logged and the
next interval tries again; a missing value (no scheduler yet) is left out, never sent as 0.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from airflow_stack.core import metadb, settings
from airflow_stack.core.errors import log
from airflow_stack.dags import releases
from airflow_stack.ops import lostqueued, requeue, scaler

DEFAULT_WORKER_CONCURRENCY = settings.WORKER_CONCURRENCY.default  # Airflow's [celery] worker_concurrency


@dataclass(frozen=True)
class Sample:
    queued: dict[str, int] = field(default_factory=dict)  # per Celery queue
    running: dict[str, int] = field(default_factory=dict)
    worker_concurrency: int = DEFAULT_WORKER_CONCURRENCY
    scheduler_heartbeat_age: float | None = None
    dag_release_age: float | None = None
    oldest_queued_age: float | None = None  # None when nothing is queued

    @property
    def desired_workers(self) -> int:
        busy = sum(self.queued.values()) + sum(self.running.values())
        return math.ceil(busy / self.worker_concurrency)

    def metrics(self) -> list[tuple[str, float, str, dict[str, str]]]:
        """(name, value, unit, extra dimensions) for every known value."""
        rows: list[tuple[str, float, str, dict[str, str]]] = [
            ("QueuedTasks", sum(self.queued.values()), "Count", {}),
            ("RunningTasks", sum(self.running.values()), "Count", {}),
            ("DesiredWorkers", self.desired_workers, "Count", {}),
        ]
        for queue in sorted(set(self.queued) | set(self.running)):
            rows.append(("QueuedTasks", self.queued.get(queue, 0), "Count", {"Queue": queue}))
            rows.append(("RunningTasks", self.running.get(queue, 0), "Count", {"Queue": queue}))
        if self.scheduler_heartbeat_age is not None:
            rows.append(("SchedulerHeartbeatAge", round(self.scheduler_heartbeat_age, 1), "Seconds", {}))
        if self.dag_release_age is not None:
            rows.append(("DagReleaseAge", round(self.dag_release_age), "Seconds", {}))
        rows.append(("OldestQueuedTaskAge", round(self.oldest_queued_age or 0.0, 1), "Seconds", {}))
        return rows


def release_age(env: Mapping[str, str]) -> float | None:
    root = settings.DAG_RELEASES_DIR.read(env)
    if not root:
        return None
    activated = releases.Store(root).read_status().last_activation
    return max(0.0, releases.age_seconds(activated)) if activated else None


def take_sample(env: Mapping[str, str]) -> Sample:
    conn = metadb.connect(env)
    try:
        counts = metadb.task_counts(conn, ("queued", "running"))
        heartbeat = metadb.heartbeat_age(conn, "SchedulerJob", None)
        oldest = metadb.oldest_queued_age(conn)
    finally:
        conn.close()
    return Sample(
        queued={queue: n for (state, queue), n in counts.items() if state == "queued"},
        running={queue: n for (state, queue), n in counts.items() if state == "running"},
        worker_concurrency=settings.WORKER_CONCURRENCY.read(env),
        scheduler_heartbeat_age=heartbeat,
        dag_release_age=release_age(env),
        oldest_queued_age=oldest,
    )


# -- sinks ------------------------------------------------------------------------------------
def log_sink(_env: Mapping[str, str]) -> Callable[[Sample], None]:
    def send(sample: Sample) -> None:
        values = " ".join(
            f"{name}{'[' + dims['Queue'] + ']' if dims else ''}={value:g}" for name, value, _, dims in sample.metrics()
        )
        log(f"monitor: {values}")

    return send


def prometheus_sink(env: Mapping[str, str]) -> Callable[[Sample], None]:
    from prometheus_client import Gauge, start_http_server

    port = settings.MONITOR_PROMETHEUS_PORT.read(env)
    gauges: dict[str, Gauge] = {}
    start_http_server(port)
    log(f"monitor: Prometheus metrics at :{port}/metrics")

    def send(sample: Sample) -> None:
        for name, value, _, dims in sample.metrics():
            metric = f"airflow_stack_{_snake(name)}" + ("_by_queue" if dims else "")
            if metric not in gauges:
                gauges[metric] = Gauge(metric, f"{name} (airflow_stack.ops.monitor)", ["queue"] if dims else [])
            (gauges[metric].labels(dims["Queue"]) if dims else gauges[metric]).set(value)

    return send


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def cloudwatch_sink(env: Mapping[str, str]) -> Callable[[Sample], None]:
    import boto3

    namespace = settings.MONITOR_NAMESPACE.read(env)
    stack = settings.MONITOR_STACK.read(env)
    client = boto3.client("cloudwatch", endpoint_url=settings.CLOUDWATCH_ENDPOINT_URL.read(env))

    def send(sample: Sample) -> None:
        data = [
            {
                "MetricName": name,
                "Value": float(value),
                "Unit": unit,
                "Dimensions": [{"Name": "Stack", "Value": stack}, *({"Name": k, "Value": v} for k, v in dims.items())],
            }
            for name, value, unit, dims in sample.metrics()
        ]
        for start in range(0, len(data), 1000):  # the API takes up to 1000 values a call
            client.put_metric_data(Namespace=namespace, MetricData=data[start : start + 1000])

    return send


def make_sinks(env: Mapping[str, str]) -> list[Callable[[Sample], None]]:
    names = settings.MONITOR_SINKS.read(env) or settings.MONITOR_SINKS.default
    factories = {"log": log_sink, "prometheus": prometheus_sink, "cloudwatch": cloudwatch_sink, "ecs": scaler.ecs_sink}
    return [factories[name](env) for name in names]


def serve(env: Mapping[str, str] | None = None, once: bool = False) -> int:
    """Sample every AIRFLOW_STACK_MONITOR_INTERVAL seconds (once: one sample; 1 if it failed)."""
    env = os.environ if env is None else env
    interval = settings.MONITOR_INTERVAL.read(env)
    sinks = make_sinks(env)
    requeuer = None if once else requeue.from_env(env)
    lost = None if requeuer is None else lostqueued.from_env(env, requeuer.broker)
    while True:
        started = time.monotonic()
        try:
            sample = take_sample(env)
            for send in sinks:
                send(sample)
        except Exception as exc:  # noqa: BLE001 - a bad sample must not end the monitor
            log(f"monitor: sample failed, next in {interval:g} s: {type(exc).__name__}: {str(exc).strip()}")
            if once:
                return 1
        if once:
            return 0
        if requeuer is not None:
            try:
                requeue.report(requeuer.sweep(), requeuer.after)
                if lost is not None:
                    lostqueued.report(lost.sweep(), lost.after)
            except Exception as exc:  # noqa: BLE001 - nor a failed sweep (broker down)
                log(f"requeue: sweep failed, next in {interval:g} s: {type(exc).__name__}: {str(exc).strip()}")
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
