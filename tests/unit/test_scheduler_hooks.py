"""The scheduler's hooks with stand-ins for Airflow's and Celery's classes: the loop's idle sleep
after activity (scheduler.loopwait) and the pooled result sessions (scheduler.resultsessions).
The real internals they wrap are checked in the image by tests/e2e/test_stack.py."""

from __future__ import annotations

import pytest

from airflow_stack.core.errors import StackError
from airflow_stack.scheduler import loopwait, resultsessions


class Executor:
    def __init__(self, running=(), queued=()):
        self.running, self.queued_tasks = set(running), dict.fromkeys(queued)


class Runner:
    """Airflow's SchedulerJobRunner as far as the loop's sleep goes."""

    _scheduler_idle_sleep_time = loopwait.IdleSleep(0.25)

    def __init__(self, executors):
        self.executors = executors
        self._scheduler_idle_sleep_time = 1.0  # as Airflow's __init__ sets it

    @loopwait._counting
    def _do_scheduling(self, session, queued=0):
        return queued


def test_with_no_task_in_flight_the_loop_sleeps_as_airflow_does():
    runner = Runner([Executor()])
    runner._do_scheduling(None, queued=3)  # it queued tasks, and they have all ended
    assert [runner._scheduler_idle_sleep_time for _ in range(3)] == [1.0, 1.0, 1.0]


def test_after_activity_with_tasks_in_flight_it_looks_again_soon_then_backs_off():
    runner = Runner([Executor(), Executor(running=["t1"])])
    assert runner._scheduler_idle_sleep_time == 1.0  # nothing has happened yet
    runner._do_scheduling(None, queued=2)
    assert [runner._scheduler_idle_sleep_time for _ in range(4)] == [0.25, 0.5, 1.0, 1.0]
    runner._do_scheduling(None, queued=0)  # a loop that did nothing starts nothing over
    assert runner._scheduler_idle_sleep_time == 1.0
    runner.executors = [Executor(queued=["t2"])]
    runner._do_scheduling(None, queued=1)
    assert runner._scheduler_idle_sleep_time == 0.25


def test_the_first_sleep_never_exceeds_airflows():
    backoff = loopwait.Backoff(first=5.0, configured=1.0)
    backoff.activity()
    assert backoff.sleep(in_flight=True) == 1.0


def test_off_by_default_or_an_airflow_without_the_internals_leaves_the_loop_alone():
    for env in ({}, {"AIRFLOW_STACK_SCHEDULER_RECHECK": "0"}):
        assert "Airflow's idle sleep throughout (AIRFLOW_STACK_SCHEDULER_RECHECK=0)" in loopwait.install(env)
    # No Airflow in the unit-test environment: what it would wrap is missing.
    message = loopwait.install({"AIRFLOW_STACK_SCHEDULER_RECHECK": "0.5"})
    assert "this Airflow differs: cannot import what it wraps" in message, message


def test_a_negative_recheck_is_refused_naming_the_setting():
    with pytest.raises(StackError) as refused:
        loopwait.install({"AIRFLOW_STACK_SCHEDULER_RECHECK": "-1"})
    assert "AIRFLOW_STACK_SCHEDULER_RECHECK" in refused.value.render()


class SessionManager:
    """Celery's session manager as far as its engines go: one engine per URL once forked."""

    def __init__(self):
        self.forked, self._engines, self._sessions = False, {}, {}

    def get_engine(self, dburi, **kwargs):
        if self.forked:
            return self._engines.setdefault(dburi, ("engine", dburi, tuple(sorted(kwargs.items()))))
        return ("unpooled", dburi)


def test_a_pooled_session_manager_keeps_one_pre_pinged_engine_per_url(monkeypatch):
    monkeypatch.setattr(resultsessions, "_managers", [])
    get_engine = resultsessions.pooled(SessionManager.get_engine)
    manager = SessionManager()
    first = get_engine(manager, "postgresql://db/airflow")
    assert first == ("engine", "postgresql://db/airflow", (("pool_pre_ping", True),))
    assert get_engine(manager, "postgresql://db/airflow") is first
    # The backend's own engine options win.
    other = SessionManager()
    assert get_engine(other, "postgresql://db/x", pool_pre_ping=False)[2] == (("pool_pre_ping", False),)


def test_a_forked_child_starts_without_engines_and_keeps_the_parents_referenced(monkeypatch):
    monkeypatch.setattr(resultsessions, "_managers", [])
    monkeypatch.setattr(resultsessions, "_inherited", [])
    get_engine = resultsessions.pooled(SessionManager.get_engine)
    manager = SessionManager()
    parents = get_engine(manager, "postgresql://db/airflow")
    resultsessions.after_fork_in_child()
    assert manager._engines == {} and resultsessions._inherited == [parents]
    assert get_engine(manager, "postgresql://db/airflow") is not parents


def test_without_celery_and_airflow_the_result_sessions_are_left_alone():
    message = resultsessions.install({})
    assert "a new connection per read (Celery's own)" in message and "cannot import" in message, message
