"""The supervisor's wait for a task's exit (worker.taskexit), with a stand-in for Airflow's
supervised subprocess; against the real supervisor: tests/e2e/test_dag_cache.py (the pinned
internals) and the benchmark (bench/stock_vs_ours.py)."""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys
import time

from airflow_stack.worker import taskexit


class Supervised:
    """What the wrapper reads of Airflow's ActivitySubprocess."""

    def __init__(self, process: subprocess.Popen):
        self.selector = selectors.DefaultSelector()
        self._process = process
        self._exit_code = None


def start(seconds: float) -> subprocess.Popen:
    # Popen is one of the trackers Airflow's supervisor accepts (psutil.Process the other): both
    # raise TimeoutExpired at the bound and keep the exit code once they have reaped the process.
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_with_no_socket_left_it_returns_as_soon_as_the_process_exits():
    supervised = Supervised(start(0.3))
    started = time.monotonic()
    assert taskexit.wait_for_exit(supervised, 5)
    assert time.monotonic() - started < 3  # not the 5 s bound
    # The exit code stays available to Airflow's own check, which waits again.
    assert supervised._process.wait(timeout=0) == 0


def test_a_process_still_running_at_the_bound_is_left_to_airflow():
    supervised = Supervised(start(30))
    try:
        started = time.monotonic()
        taskexit.wait_for_exit(supervised, 0.2)
        assert 0.2 <= time.monotonic() - started < 2
        assert supervised._process.poll() is None
    finally:
        supervised._process.kill()


def test_while_a_socket_is_open_it_does_not_wait():
    supervised = Supervised(start(30))
    left, right = socket.socketpair()
    try:
        supervised.selector.register(left, selectors.EVENT_READ)
        started = time.monotonic()
        assert not taskexit.wait_for_exit(supervised, 5)
        assert time.monotonic() - started < 0.5
    finally:
        supervised._process.kill()
        left.close()
        right.close()


def test_without_what_it_wraps_it_leaves_airflow_alone_and_says_why():
    message = taskexit.install()  # no Airflow in the unit-test environment
    assert message.startswith("task exit: Airflow's own wait") and "cannot import" in message
