"""A worker configured as the workers stack configures it (deploy/aws/templates/workers.yaml:
the same variables, no database credentials, a Redis result backend) runs a DAG run to success
on the local stack. Endpoints the template builds from AWS resources are pointed at the local
services; every other value is the template's own. The stack runs as on AWS: DAGs from
dag-sync's releases and task logs in S3 (Stack.use_releases, Stack.use_s3_logs)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest
from cfnlint.decode import decode

from . import conftest
from .conftest import PROJECT, ROOT, UI_PORT, Stack, finish, poll
from .conftest import RELEASE_DAG_ID as DAG_ID
from .conftest import trigger_release_probe as trigger

NAME = f"{PROJECT}-ecs-worker"
docker = partial(conftest.docker, timeout=120)


@pytest.fixture(scope="module")
def stack(stack: Stack) -> Stack:
    stack.use_s3_logs()
    stack.use_releases()
    return stack


def template_worker() -> tuple[dict, dict]:
    template, _ = decode(str(ROOT / "deploy" / "aws" / "templates" / "workers.yaml"))
    task = template["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    return template, task


def parameter_default(name: str) -> str:
    """A parameter's default: the workers template's, or the apps template's for those the
    workers stack takes from the apps stack's outputs (WorkerConcurrency, CpuArchitecture)."""
    for stack in ("workers", "apps"):
        template, _ = decode(str(ROOT / "deploy" / "aws" / "templates" / f"{stack}.yaml"))
        parameter = template["Parameters"].get(name, {})
        if "Default" in parameter:
            return str(parameter["Default"])
    raise AssertionError(f"no default for {name} in workers.yaml or apps.yaml")


def worker_command() -> list[str]:
    """The worker's command, its parameters (the Celery queue) at their defaults."""
    return [parameter_default(a["Ref"]) if isinstance(a, dict) else a for a in template_worker()[1]["Command"]]


def worker_environment(stack: Stack) -> dict[str, str]:
    """The template's variables with local values: its plain values and parameter defaults as
    they are, the AWS endpoints and the secrets from the local stack."""
    template, task = template_worker()
    local = {
        "AIRFLOW__CELERY__BROKER_URL": "redis://redis:6379/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "redis://redis:6379/1",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://api-server:8080/execution/",
        "AIRFLOW__API__BASE_URL": f"http://localhost:{UI_PORT}",
        "AIRFLOW_STACK_LOGS_S3_URL": stack.env["AIRFLOW_STACK_LOGS_S3_URL"],
        "AWS_DEFAULT_REGION": stack.env.get("AWS_DEFAULT_REGION", "us-east-1"),
        # Secrets Manager's part, from .env
        "AIRFLOW__CORE__FERNET_KEY": stack.env["AIRFLOW_FERNET_KEY"],
        "AIRFLOW__API_AUTH__JWT_SECRET": stack.env["AIRFLOW_JWT_SECRET"],
        "AIRFLOW__API__SECRET_KEY": stack.env["AIRFLOW_API_SECRET_KEY"],
        "AIRFLOW_STACK_REDIS_PASSWORD": stack.env["REDIS_PASSWORD"],
    }
    environment = {}
    for entry in [*task["Environment"], *({"Name": s["Name"]} for s in task["Secrets"])]:
        name, value = entry["Name"], entry.get("Value")
        if name in local:
            environment[name] = local[name]
        elif isinstance(value, dict) and "Ref" in value:
            environment[name] = parameter_default(value["Ref"])
        else:
            assert isinstance(value, str), f"{name}: no local value for {value!r}; add it to `local`"
            environment[name] = value
    # The local S3 (moto) and its keys stand in for the task role.
    for name in ("AIRFLOW_STACK_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        environment[name] = stack.env[name]
    return environment


def container_log() -> str:
    result = docker("logs", NAME, check=False)
    return result.stdout + result.stderr


def test_a_worker_with_the_ecs_settings_runs_tasks_without_database_credentials(stack: Stack):
    environment = worker_environment(stack)
    assert not [n for n in environment if "SQL_ALCHEMY" in n or n == "AIRFLOW_STACK_DB_PASSWORD"]
    image = os.environ.get("AIRFLOW_IMAGE", "airflow-stack:latest")
    stack.run("stop", "worker")
    docker("rm", "-f", NAME, check=False)
    try:
        docker(
            "run",
            "-d",
            "--name",
            NAME,
            "--hostname",
            "ecs-worker",
            "--network",
            f"{PROJECT}_default",
            "--user",
            f"{stack.env['AIRFLOW_UID']}:0",
            "-v",
            f"{PROJECT}_dag-releases:/opt/airflow/dag-releases:ro",
            "-v",
            f"{Path(stack.logs_dir)}:/opt/airflow/logs",
            *(arg for name, value in environment.items() for arg in ("-e", f"{name}={value}")),
            image,
            *worker_command(),
        )
        poll(
            "the ECS-configured worker is ready",
            lambda: "ready." in container_log(),
            120,
            lambda: container_log()[-4000:],
        )
        with stack.api() as api:
            run_id = trigger(api)
            finish(stack, api, run_id)
            tis = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
        assert {ti["hostname"] for ti in tis} == {"ecs-worker"}, tis
        assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in docker("exec", NAME, "env").stdout
    except AssertionError:
        print(container_log()[-8000:])
        raise
    finally:
        docker("rm", "-f", NAME, check=False)
        stack.run("start", "worker")
