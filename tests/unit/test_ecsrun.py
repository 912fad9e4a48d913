"""One-off ECS tasks and the pre-migration snapshot (airflow_stack.host.ecsrun) against a
stand-in `aws` CLI that answers as ECS and RDS do: a task that goes PROVISIONING -> RUNNING ->
STOPPED, one that never starts, one that outlives the wait, a snapshot that becomes available.
(moto's ECS tasks never stop, so `make db-migrate` cannot run against it end to end.)"""

from __future__ import annotations

import json

import pytest

from airflow_stack.core.errors import StackError
from airflow_stack.host import ecsrun

OUTPUTS = {
    "ClusterName": "prod-airflow-apps",
    "DbMigrateTaskDefinitionArn": "arn:aws:ecs:eu-west-1:1:task-definition/prod-airflow-db-migrate:3",
    "BootstrapTaskDefinitionArn": "arn:aws:ecs:eu-west-1:1:task-definition/prod-airflow-bootstrap:3",
    "TaskNetworkConfiguration": "awsvpcConfiguration={subnets=[s-1],securityGroups=[sg-1],assignPublicIp=DISABLED}",
    "LogGroupName": "/airflow/prod/apps",
}
TASK = "arn:aws:ecs:eu-west-1:1:task/prod-airflow-apps/0123abcd"


class StandInAws:
    def __init__(self, statuses: list[dict], started: dict | None = None):
        self.statuses = statuses
        self.started = started if started is not None else {"tasks": [{"taskArn": TASK}], "failures": []}
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        self.calls.append(args)
        if args[:2] == ("ecs", "run-task"):
            return json.dumps(self.started)
        if args[:2] == ("ecs", "describe-tasks"):
            return json.dumps({"tasks": [self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]]})
        if args[:2] == ("rds", "create-db-snapshot"):
            return "{}"
        if args[:2] == ("rds", "describe-db-snapshots"):
            return json.dumps({"DBSnapshots": [self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]]})
        raise AssertionError(args)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def outputs(monkeypatch):
    monkeypatch.setattr(ecsrun, "stack_outputs", lambda stack: dict(OUTPUTS))


def run(monkeypatch, stand_in: StandInAws, **kwargs) -> list[str]:
    monkeypatch.setattr(ecsrun, "aws", stand_in)
    clock, said = Clock(), []
    ecsrun.run_task(
        "prod-airflow-apps",
        "db-migrate",
        "DbMigrateTaskDefinitionArn",
        clock=clock,
        sleep=clock.sleep,
        say=said.append,
        **kwargs,
    )
    return said


def stopped(code: int | None, reason: str = "Essential container in task exited", detail: str | None = None) -> dict:
    container = (
        {"name": "db-migrate"}
        | ({"exitCode": code} if code is not None else {})
        | ({"reason": detail} if detail else {})
    )
    return {"lastStatus": "STOPPED", "stoppedReason": reason, "containers": [container]}


def test_a_task_that_exits_0_is_followed_status_by_status(monkeypatch, outputs):
    stand_in = StandInAws(
        [{"lastStatus": "PROVISIONING"}, {"lastStatus": "RUNNING"}, {"lastStatus": "RUNNING"}, stopped(0)]
    )
    said = run(monkeypatch, stand_in)
    assert [line.split(" after")[0] for line in said[1:-1]] == [
        "db-migrate: PROVISIONING",
        "db-migrate: RUNNING",
        "db-migrate: STOPPED",
    ]
    assert "stream db-migrate/db-migrate/0123abcd" in said[0] and said[-1].startswith("db-migrate: done in")


def test_a_failed_task_names_ecs_reason_the_exit_code_and_the_log_stream(monkeypatch, outputs):
    with pytest.raises(StackError) as refused:
        run(monkeypatch, StandInAws([stopped(1)]))
    assert "exit code 1: Essential container in task exited" in refused.value.problem
    assert "stream db-migrate/db-migrate/0123abcd" in refused.value.fix


def test_a_task_that_never_ran_says_why_instead_of_exit_code_none(monkeypatch, outputs):
    never = stopped(
        None, "CannotPullContainerError: pull image manifest has been retried 5 time(s)", "ResourceInitializationError"
    )
    with pytest.raises(StackError) as refused:
        run(monkeypatch, StandInAws([{"lastStatus": "PENDING"}, never]))
    assert "(none: it never ran)" in refused.value.problem
    assert (
        "CannotPullContainerError" in refused.value.problem and "ResourceInitializationError" in refused.value.problem
    )


def test_a_long_task_is_waited_for_up_to_the_timeout_with_no_ten_minute_cliff(monkeypatch, outputs):
    said = run(monkeypatch, StandInAws([{"lastStatus": "RUNNING"}] * 100 + [stopped(0)]), timeout=3600)
    assert said[-1].startswith("db-migrate: done in 15")  # 100 looks, 15 s apart: past 10 minutes
    with pytest.raises(StackError) as refused:
        run(monkeypatch, StandInAws([{"lastStatus": "RUNNING"}]), timeout=60)
    assert "still RUNNING after 60 s; it goes on running" in refused.value.problem


def test_ecs_refusing_to_start_the_task_is_a_clear_error(monkeypatch, outputs):
    failure = {"tasks": [], "failures": [{"arn": "", "reason": "RESOURCE:ENI", "detail": "no free IP"}]}
    with pytest.raises(StackError, match="ECS did not start the db-migrate task: RESOURCE:ENI no free IP"):
        run(monkeypatch, StandInAws([stopped(0)], started=failure))


def test_a_command_replaces_the_containers_command(monkeypatch, outputs):
    stand_in = StandInAws([stopped(0)])
    monkeypatch.setattr(ecsrun, "aws", stand_in)
    clock = Clock()
    ecsrun.run_task(
        "prod-airflow-apps",
        "db-migrate",
        "DbMigrateTaskDefinitionArn",
        ["dags", "list"],
        clock=clock,
        sleep=clock.sleep,
        say=lambda _: None,
    )
    run_task = stand_in.calls[0]
    overrides = json.loads(run_task[run_task.index("--overrides") + 1])
    assert overrides == {"containerOverrides": [{"name": "db-migrate", "command": ["dags", "list"]}]}


def test_the_snapshot_is_named_for_the_migration_and_waited_for(monkeypatch):
    from datetime import UTC, datetime

    stand_in = StandInAws([{"Status": "creating"}, {"Status": "creating"}, {"Status": "available"}])
    monkeypatch.setattr(ecsrun, "aws", stand_in)
    clock, said = Clock(), []
    name = ecsrun.snapshot(
        "prod-airflow",
        now=lambda: datetime(2026, 11, 30, 21, 5, 9, tzinfo=UTC),
        clock=clock,
        sleep=clock.sleep,
        say=said.append,
    )
    assert name == "prod-airflow-pre-migrate-20261130-210509"
    assert stand_in.calls[0] == (
        "rds",
        "create-db-snapshot",
        "--db-instance-identifier",
        "prod-airflow",
        "--db-snapshot-identifier",
        name,
    )
    assert said[-1] == f"snapshot: {name} available after 30 s"
