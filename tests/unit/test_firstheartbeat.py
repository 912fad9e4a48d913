"""The supervisor's first heartbeat (worker.firstheartbeat), with a stand-in for Airflow's
supervised subprocess; against the real supervisor: tests/e2e/test_dag_cache.py (the pinned
internals, and a short task that sends no heartbeat while a longer one does)."""

from __future__ import annotations

import time

from airflow_stack.worker import firstheartbeat


class Supervised:
    """What the wrapper writes of Airflow's ActivitySubprocess: 0 until a heartbeat was tried,
    which is why Airflow's first check sends one at once."""

    _last_heartbeat_attempt = 0.0


def test_the_start_counts_as_the_latest_heartbeat_attempt():
    supervised = Supervised()
    before = time.monotonic()
    firstheartbeat.mark_started(supervised)
    assert before <= supervised._last_heartbeat_attempt <= time.monotonic()


def test_without_what_it_wraps_it_leaves_airflow_alone_and_says_why():
    message = firstheartbeat.install()  # no Airflow in the unit-test environment
    assert message.startswith("first heartbeat: Airflow's own") and "cannot import" in message
