"""The monitor's numbers and sinks: desired workers, what is sent (and what is left out), the
log line, and PutMetricData against moto's CloudWatch server on 127.0.0.1."""

from __future__ import annotations

import urllib.request

import pytest

from airflow_stack.core.errors import StackError
from airflow_stack.ops import monitor


def test_desired_workers_cover_queued_and_running_tasks():
    assert monitor.Sample().desired_workers == 0
    assert monitor.Sample(queued={"default": 1}).desired_workers == 1
    assert monitor.Sample(queued={"default": 10}, running={"default": 6, "gpu": 1}).desired_workers == 2
    assert monitor.Sample(queued={"default": 33}, worker_concurrency=8).desired_workers == 5


def test_metrics_have_totals_per_queue_values_and_leave_unknowns_out():
    sample = monitor.Sample(queued={"default": 3}, running={"gpu": 2}, scheduler_heartbeat_age=4.26)
    rows = {(name, tuple(dims.items())): (value, unit) for name, value, unit, dims in sample.metrics()}
    assert rows[("QueuedTasks", ())] == (3, "Count") and rows[("RunningTasks", ())] == (2, "Count")
    assert rows[("QueuedTasks", (("Queue", "gpu"),))] == (0, "Count")
    assert rows[("RunningTasks", (("Queue", "gpu"),))] == (2, "Count")
    assert rows[("DesiredWorkers", ())] == (1, "Count")
    assert rows[("SchedulerHeartbeatAge", ())] == (4.3, "Seconds")
    assert not any(name == "DagReleaseAge" for name, _ in rows)
    assert rows[("OldestQueuedTaskAge", ())] == (0, "Seconds")  # nothing queued: 0, so an alarm can clear
    aged = monitor.Sample(queued={"default": 1}, oldest_queued_age=42.04).metrics()
    assert ("OldestQueuedTaskAge", 42.0, "Seconds", {}) in aged


def test_log_sink_prints_one_line(capsys):
    monitor.log_sink({})(monitor.Sample(queued={"default": 3}))
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and "QueuedTasks=3" in err
        and "QueuedTasks[default]=3" in err
        and "DesiredWorkers=1" in err
    )


def test_unknown_sinks_and_bad_numbers_are_refused_naming_the_setting():
    with pytest.raises(StackError, match="names 'statsd', which is not one of log, prometheus, cloudwatch") as error:
        monitor.make_sinks({"AIRFLOW_STACK_MONITOR_SINKS": "log,statsd"})
    assert "AIRFLOW_STACK_MONITOR_SINKS" in error.value.render()
    with pytest.raises(StackError, match="AIRFLOW_STACK_MONITOR_INTERVAL='0'"):
        monitor.serve({"AIRFLOW_STACK_MONITOR_INTERVAL": "0"}, once=True)


def test_a_failed_sample_is_logged_and_once_exits_1(capsys, unused_port):
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://a:b@127.0.0.1:{unused_port}/airflow"}
    assert monitor.serve(env, once=True) == 1
    assert "monitor: sample failed" in capsys.readouterr().err


def test_prometheus_sink_serves_gauges(unused_port):
    send = monitor.prometheus_sink({"AIRFLOW_STACK_MONITOR_PROMETHEUS_PORT": str(unused_port)})
    send(monitor.Sample(queued={"default": 5}, running={"default": 2}))
    text = urllib.request.urlopen(f"http://127.0.0.1:{unused_port}/metrics", timeout=5).read().decode()
    assert "airflow_stack_queued_tasks 5.0" in text
    assert 'airflow_stack_running_tasks_by_queue{queue="default"} 2.0' in text
    assert "airflow_stack_desired_workers 1.0" in text


def test_cloudwatch_sink_puts_every_value_with_its_dimensions(moto_endpoint, aws_test_credentials):
    import boto3

    env = {
        "AIRFLOW_STACK_CLOUDWATCH_ENDPOINT_URL": moto_endpoint,
        "AIRFLOW_STACK_MONITOR_STACK": "unit",
        "AIRFLOW_STACK_MONITOR_NAMESPACE": "AirflowStackUnit",
    }
    monitor.cloudwatch_sink(env)(monitor.Sample(queued={"default": 40}, running={"default": 8}, dag_release_age=12))
    client = boto3.client("cloudwatch", endpoint_url=moto_endpoint)
    metrics = client.list_metrics(Namespace="AirflowStackUnit")["Metrics"]
    found = {(m["MetricName"], tuple(sorted((d["Name"], d["Value"]) for d in m["Dimensions"]))) for m in metrics}
    assert ("DesiredWorkers", (("Stack", "unit"),)) in found
    assert ("QueuedTasks", (("Queue", "default"), ("Stack", "unit"))) in found
    assert ("DagReleaseAge", (("Stack", "unit"),)) in found
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    stats = client.get_metric_statistics(
        Namespace="AirflowStackUnit",
        MetricName="DesiredWorkers",
        Dimensions=[{"Name": "Stack", "Value": "unit"}],
        StartTime=now - datetime.timedelta(minutes=5),
        EndTime=now + datetime.timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )
    assert [point["Maximum"] for point in stats["Datapoints"]] == [3.0]
