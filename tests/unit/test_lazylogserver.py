"""ops.lazylogserver with a stand-in for Airflow's `_serve_logs` context: skipped, nothing of it
runs; not skipped, it runs as it is. The real contexts it wraps are checked in the image by
tests/e2e/test_stack.py."""

from __future__ import annotations

import contextlib
import inspect

from airflow_stack.ops import lazylogserver

entered: list[bool] = []


@contextlib.contextmanager
def airflows_serve_logs(skip_serve_logs: bool = False):
    entered.append(skip_serve_logs)  # stands for the import and the log server's start
    yield


def test_a_skipped_log_server_is_neither_imported_nor_started():
    entered.clear()
    with lazylogserver.lazy(airflows_serve_logs, lambda: False)(True):
        pass
    with lazylogserver.lazy(airflows_serve_logs, lambda: True)(False):  # no executor serves logs
        pass
    assert entered == []


def test_otherwise_airflows_context_runs_as_it_is():
    entered.clear()
    with lazylogserver.lazy(airflows_serve_logs, lambda: False)(False):
        pass
    assert entered == [False]


def test_the_wrapper_leads_back_to_airflows_function():
    wrapped = lazylogserver.lazy(airflows_serve_logs, lambda: False)
    assert inspect.unwrap(wrapped) is inspect.unwrap(airflows_serve_logs)
    assert inspect.unwrap(wrapped).__name__ == "airflows_serve_logs"


def test_an_airflow_without_the_internals_is_left_alone():
    # No Airflow in the unit-test environment: what it would wrap is missing.
    for component in ("scheduler", "triggerer", "worker"):
        assert lazylogserver.incompatibilities(component)[0].startswith("cannot import")
        assert lazylogserver.install(component).startswith("log server: imported at start (Airflow's own)")
