"""Cheap container health probes: `airflow-stack healthcheck COMPONENT`.

`airflow jobs check` and `celery inspect ping` import Airflow and cost about 5 s of CPU per
probe; these probes never import Airflow. The api-server and Flower are asked over HTTP; the
scheduler, the dag-processor and the triggerer by their job heartbeat in the metadata DB
(what `airflow jobs check` reads); the worker by a Celery ping addressed to this host only;
dag-sync by the age of the last poll in its status record (a failed poll still counts: the
loop is alive, and `dag-sync status` shows the error).
Exit 0 when healthy, 1 otherwise, with one line saying why.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request

from airflow_stack.core import components, metadb, settings
from airflow_stack.dags import releases

HEARTBEAT_THRESHOLD_S = 60
_HTTP = {
    "api-server": f"http://127.0.0.1:{components.API_SERVER_PORT}/api/v2/monitor/health",
    "flower": f"http://127.0.0.1:{components.FLOWER_PORT}/healthcheck",
}
# The scheduler too: its own health server ([scheduler] enable_health_check) would cost a
# process of about 80 MiB to answer the same question.
_JOB_TYPES = {"scheduler": "SchedulerJob", "dag-processor": "DagProcessorJob", "triggerer": "TriggererJob"}


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


def probe_heartbeat(job_type: str) -> str:
    import psycopg2

    try:
        conn = metadb.connect(os.environ)
    except psycopg2.Error as exc:
        raise Unhealthy(f"cannot reach the metadata DB: {str(exc).strip()}") from None
    hostnames = _hostnames()
    try:
        age = metadb.heartbeat_age(conn, job_type, hostnames)
    finally:
        conn.close()
    if age is None:
        raise Unhealthy(f"no running {job_type} on {hostnames} yet")
    if age > HEARTBEAT_THRESHOLD_S:
        raise Unhealthy(f"{job_type} heartbeat is {age:.0f} s old (limit {HEARTBEAT_THRESHOLD_S} s)")
    return f"{job_type} heartbeat {age:.1f} s ago"


def probe_worker() -> str:
    from celery import Celery

    app = Celery(broker=settings.value(settings.BROKER_URL, os.environ))
    name = f"celery@{socket.gethostname()}"
    try:
        replies = app.control.ping(destination=[name], timeout=3)
    except Exception as exc:  # noqa: BLE001 - kombu raises transport-specific errors
        raise Unhealthy(f"cannot ping {name} through the broker: {exc}") from None
    if not any(name in reply for reply in replies):
        raise Unhealthy(f"{name} did not answer a ping within 3 s")
    return f"{name} answered a ping"


def probe_dag_sync() -> str:
    store = releases.store_of(os.environ)
    status = store.read_status()
    if not status.last_check:
        raise Unhealthy(f"no poll recorded yet in {store.status_file}")
    interval = float(os.environ.get("AIRFLOW_STACK_DAG_SYNC_INTERVAL") or releases.DEFAULT_SYNC_INTERVAL)
    age, limit = releases.age_seconds(status.last_check), max(3 * interval, 90)
    if age > limit:
        raise Unhealthy(f"the last poll was {age:.0f} s ago (limit {limit:.0f} s)")
    return f"last poll {age:.0f} s ago; current release {status.current_version}"


def probe(component: str) -> str:
    if component in _HTTP:
        return probe_http(_HTTP[component])
    if component in _JOB_TYPES:
        return probe_heartbeat(_JOB_TYPES[component])
    if component == "worker":
        return probe_worker()
    if component == "dag-sync":
        return probe_dag_sync()
    raise Unhealthy(f"no health probe for {component!r}; probes exist for: "
                    f"{', '.join([*_HTTP, *_JOB_TYPES, 'worker', 'dag-sync'])}")


def main(component: str) -> int:
    """Probe `component`; the caller (cli) has resolved *_FILE settings already."""
    try:
        print(f"healthy: {probe(component)}")
        return 0
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
