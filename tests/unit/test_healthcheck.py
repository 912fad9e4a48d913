"""The health probes' verdicts: the heartbeat threshold, dag-sync's poll age, the probe chosen
by the component table, and a refusal as `unhealthy:` rather than a traceback."""

from __future__ import annotations

import pytest

from airflow_stack.checks import healthcheck
from airflow_stack.core import components


@pytest.mark.parametrize(("age", "healthy"), [(0.0, True), (59.9, True), (60.0, True), (60.1, False), (600, False)])
def test_a_heartbeat_is_healthy_up_to_the_threshold(age, healthy):
    hosts = ["scheduler-1"]
    if healthy:
        assert healthcheck.check_heartbeat("SchedulerJob", age, hosts).startswith("SchedulerJob heartbeat")
    else:
        with pytest.raises(healthcheck.Unhealthy, match=f"limit {healthcheck.HEARTBEAT_THRESHOLD_S} s"):
            healthcheck.check_heartbeat("SchedulerJob", age, hosts)


def test_no_heartbeat_on_this_host_is_unhealthy_naming_the_host():
    with pytest.raises(healthcheck.Unhealthy, match=r"no running TriggererJob on \['triggerer-1'\]"):
        healthcheck.check_heartbeat("TriggererJob", None, ["triggerer-1"])


@pytest.mark.parametrize(("interval", "limit"), [(2, 90), (5, 90), (30, 90), (31, 93), (60, 180)])
def test_dag_sync_is_late_after_three_intervals_and_never_before_90_s(interval, limit):
    assert healthcheck.poll_age_limit(interval) == limit


def test_each_probe_kind_is_chosen_from_the_component_table(monkeypatch):
    calls = []
    monkeypatch.setattr(healthcheck, "probe_http", lambda url: calls.append(("http", url)) or "ok")
    monkeypatch.setattr(healthcheck, "probe_heartbeat", lambda job, env: calls.append(("heartbeat", job)) or "ok")
    monkeypatch.setattr(healthcheck, "probe_worker", lambda env: calls.append(("celery-ping", "")) or "ok")
    monkeypatch.setattr(healthcheck, "probe_dag_sync", lambda env: calls.append(("dag-sync-status", "")) or "ok")
    probed = [c for c in components.COMPONENTS.values() if c.probe]
    for component in probed:
        healthcheck.probe(component.name, {})
    assert calls == [(c.probe.kind, c.probe.target) for c in probed]
    assert {kind for kind, _ in calls} == {"http", "heartbeat", "celery-ping", "dag-sync-status"}


def test_a_component_without_a_probe_is_reported_not_raised(capsys):
    assert healthcheck.main("log-groomer", {}) == 1
    assert "no health probe for 'log-groomer'" in capsys.readouterr().err
    assert healthcheck.main("webserver", {}) == 1
    assert "unknown component 'webserver'" in capsys.readouterr().err
