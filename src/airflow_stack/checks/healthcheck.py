"""Cheap container health probes: `airflow-stack healthcheck COMPONENT`.

`airflow jobs check` and `celery inspect ping` import Airflow and cost about 5 s of CPU per
probe; these probes never import Airflow. What is asked is the component's `probe` field
(core.components): an HTTP endpoint (the api-server, Flower), the job heartbeat in the
metadata DB (the scheduler, the dag-processor, the triggerer: what `airflow jobs check`
reads), a Celery ping addressed to this host only (the worker), or the age of the last poll in
dag-sync's status record (a failed poll still counts: the loop is alive, and `dag-sync status`
shows the error). Exit 0 when healthy, 1 otherwise, with one line saying why.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

from airflow_stack.core import components, metadb, settings
from airflow_stack.core.errors import StackError
from airflow_stack.dags import releases

HEARTBEAT_THRESHOLD_S = 60
# dag-sync is unhealthy when its last poll is older than this many poll intervals (at least 90 s).
POLL_INTERVALS_LATE = 3
MIN_POLL_AGE_LIMIT_S = 90


class Unhealthy(Exception):
    pass


def probe_http(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        raise Unhealthy(f"{url} answered {exc.code}") from None
    except OSError as exc:
        raise Unhealthy(f"{url}: {exc}") from None


def _hostnames() -> list[str]:
    return sorted({socket.gethostname(), socket.getfqdn()})


def check_heartbeat(job_type: str, age: float | None, hostnames: list[str]) -> str:
    """Healthy when the newest heartbeat of `job_type` on this host is at most the threshold old."""
    if age is None:
        raise Unhealthy(f"no running {job_type} on {hostnames} yet")
    if age > HEARTBEAT_THRESHOLD_S:
        raise Unhealthy(f"{job_type} heartbeat is {age:.0f} s old (limit {HEARTBEAT_THRESHOLD_S} s)")
    return f"{job_type} heartbeat {age:.1f} s ago"


def probe_heartbeat(job_type: str, env: Mapping[str, str]) -> str:
    import psycopg2

    try:
        conn = metadb.connect(env)
    except psycopg2.Error as exc:
        raise Unhealthy(f"cannot reach the metadata DB: {str(exc).strip()}") from None
    hostnames = _hostnames()
    try:
        age = metadb.heartbeat_age(conn, job_type, hostnames)
    finally:
        conn.close()
    return check_heartbeat(job_type, age, hostnames)


def probe_worker(env: Mapping[str, str]) -> str:
    from celery import Celery

    app = Celery(broker=settings.BROKER_URL.raw(env))
    name = f"celery@{socket.gethostname()}"
    try:
        replies = app.control.ping(destination=[name], timeout=3)
    except Exception as exc:  # noqa: BLE001 - kombu raises transport-specific errors
        raise Unhealthy(f"cannot ping {name} through the broker: {exc}") from None
    if not any(name in reply for reply in replies):
        raise Unhealthy(f"{name} did not answer a ping within 3 s")
    return f"{name} answered a ping"


def poll_age_limit(interval: float) -> float:
    return max(POLL_INTERVALS_LATE * interval, MIN_POLL_AGE_LIMIT_S)


def probe_dag_sync(env: Mapping[str, str]) -> str:
    store = releases.store_of(env)
    status = store.read_status()
    if not status.last_check:
        raise Unhealthy(f"no poll recorded yet in {store.status_file}")
    age, limit = releases.age_seconds(status.last_check), poll_age_limit(settings.DAG_SYNC_INTERVAL.read(env))
    if age > limit:
        raise Unhealthy(f"the last poll was {age:.0f} s ago (limit {limit:.0f} s)")
    return f"last poll {age:.0f} s ago; current release {status.current_version}"


def probe(name: str, env: Mapping[str, str]) -> str:
    component = components.get(name)
    probe = component.probe
    if probe is None:
        with_probes = [c.name for c in components.COMPONENTS.values() if c.probe]
        raise Unhealthy(f"no health probe for {name!r}; probes exist for: {', '.join(with_probes)}")
    if probe.kind == "http":
        return probe_http(probe.target)
    if probe.kind == "heartbeat":
        return probe_heartbeat(probe.target, env)
    if probe.kind == "celery-ping":
        return probe_worker(env)
    return probe_dag_sync(env)


def main(component: str, env: Mapping[str, str] | None = None) -> int:
    """Probe `component`; the caller (cli) has resolved *_FILE settings already."""
    env = os.environ if env is None else env
    try:
        print(f"healthy: {probe(component, env)}")
        return 0
    except (Unhealthy, StackError) as exc:
        reason = exc.problem if isinstance(exc, StackError) else str(exc)
        print(f"unhealthy: {reason}", file=sys.stderr)
        return 1
