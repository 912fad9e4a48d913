"""A worker configured as the workers stack configures it (deploy/aws/templates/workers.yaml:
the same variables, no database credentials, a Redis result backend) runs a DAG run to success
on the local stack. Endpoints the template builds from AWS resources are pointed at the local
services; every other value is the template's own. The stack runs as on AWS: DAGs from
dag-sync's releases and task logs in S3 (Stack.use_releases, Stack.use_s3_logs)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from functools import partial
from pathlib import Path

import httpx
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
    result = docker("logs", "--timestamps", NAME, check=False)
    return result.stdout + result.stderr


def start_worker(stack: Stack, environment: dict[str, str]) -> None:
    """The ECS-configured worker in place of the compose one, on the stack's network; ready."""
    image = os.environ.get("AIRFLOW_IMAGE", "airflow-stack:latest")
    stack.run("stop", "worker")
    docker("rm", "-f", NAME, check=False)
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
        "the ECS-configured worker is ready", lambda: "ready." in container_log(), 120, lambda: container_log()[-4000:]
    )


def stop_worker(stack: Stack) -> None:
    docker("rm", "-f", NAME, check=False)
    stack.run("start", "worker")


def test_a_worker_with_the_ecs_settings_runs_tasks_without_database_credentials(stack: Stack):
    environment = worker_environment(stack)
    assert not [n for n in environment if "SQL_ALCHEMY" in n or n == "AIRFLOW_STACK_DB_PASSWORD"]
    try:
        start_worker(stack, environment)
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
        stop_worker(stack)


# -- a deployment that replaces the worker ---------------------------------------------------------
ECS_API = f"{PROJECT}-ecs-api"  # moto's server, for ECS's API (DescribeTasks, DescribeServices)
ECS_AGENT = f"{PROJECT}-ecs-agent"  # tests/e2e/ecs_agent.py: task metadata and task protection
CLUSTER = "staging-airflow-workers"
SIGNAL_HANDLING = 2.0  # seconds in which messages already read from Redis are still dispatched


def published_port(container: str, port: int) -> str:
    return docker("port", container, str(port)).stdout.split()[0]


def ecs_api() -> tuple[object, str]:
    """moto's server on the stack's network (as `ecs-api`), with every service's deployment
    counting one running task; a boto3 ECS client on it and the ARN of a worker task that the
    service `worker`'s current deployment started."""
    import boto3

    docker("rm", "-f", ECS_API, check=False)
    docker(
        "run", "-d", "--name", ECS_API, "--network", f"{PROJECT}_default", "--network-alias", "ecs-api",
        "-e", "MOTO_ECS_SERVICE_RUNNING=1", "-p", "127.0.0.1::5000", "airflow-stack-s3-local:latest",
    )  # fmt: skip
    options = {"region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}
    url = f"http://{published_port(ECS_API, 5000)}"
    ecs, ec2 = boto3.client("ecs", endpoint_url=url, **options), boto3.client("ec2", endpoint_url=url, **options)
    ready = lambda: docker("exec", ECS_API, "test", "-f", "/tmp/ready", check=False).returncode == 0  # noqa: E731
    poll("moto's server is ready", ready, 60, lambda: docker("logs", ECS_API, check=False).stdout)
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family="staging-airflow-worker", containerDefinitions=[{"name": "worker", "image": "x", "memory": 512}]
    )
    ecs.create_service(cluster=CLUSTER, serviceName="worker", taskDefinition="staging-airflow-worker", desiredCount=1)
    deployment = ecs.describe_services(cluster=CLUSTER, services=["worker"])["services"][0]["deployments"][0]["id"]
    instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ecs.register_container_instance(cluster=CLUSTER, instanceIdentityDocument=json.dumps({"instanceId": instance}))
    task = ecs.run_task(
        cluster=CLUSTER, taskDefinition="staging-airflow-worker", startedBy=deployment, group="service:worker"
    )["tasks"][0]["taskArn"]
    return ecs, task


def ecs_agent(stack: Stack, task: str) -> str:
    """tests/e2e/ecs_agent.py on the stack's network (as `ecs-agent`); its URL on 127.0.0.1."""
    image = os.environ.get("AIRFLOW_IMAGE", "airflow-stack:latest")
    docker("rm", "-f", ECS_AGENT, check=False)
    docker(
        "run", "-d", "--name", ECS_AGENT, "--network", f"{PROJECT}_default", "--network-alias", "ecs-agent",
        "-e", f"CLUSTER={CLUSTER}", "-e", f"TASK_ARN={task}", "-p", "127.0.0.1::8000",
        "-v", f"{Path(__file__).parent / 'ecs_agent.py'}:/tmp/ecs_agent.py:ro",
        "--entrypoint", "python", image, "/tmp/ecs_agent.py",
    )  # fmt: skip
    url = f"http://{published_port(ECS_AGENT, 8000)}"
    poll("the fake ECS agent answers", lambda: httpx.get(f"{url}/protection", timeout=5).status_code == 200, 60,
         lambda: docker("logs", ECS_AGENT).stderr)  # fmt: skip
    return url


def protection_states(agent: str) -> list[bool]:
    return [state["ProtectionEnabled"] for state in httpx.get(f"{agent}/protection", timeout=5).json()]


def protected_then_not(agent: str) -> bool:
    """The worker turned its scale-in protection on, and its last call turned it off."""
    states = protection_states(agent)
    return True in states and states[-1] is False


def parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def stamped(log: str, marker: str) -> list[float]:
    """Docker's timestamps of the log lines holding `marker`."""
    return [parse(line[:26] + "+00:00") for line in log.splitlines() if marker in line]


def test_a_worker_left_behind_by_a_deployment_finishes_its_tasks_takes_no_new_one_and_unprotects(stack: Stack):
    """Five runs whose first task sleeps 20 s wait for a worker of concurrency 2. While it runs
    two, the service gets a new deployment: the worker leaves its queue, receives no message
    after that, finishes the two, and turns its scale-in protection off. The compose worker (the
    new deployment's) then runs the rest: every task succeeds at its first try."""
    ecs, task = ecs_api()
    agent = ecs_agent(stack, task)
    environment = {
        **worker_environment(stack),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "ECS_CONTAINER_METADATA_URI_V4": "http://ecs-agent:8000/v4/worker",
        "ECS_AGENT_URI": "http://ecs-agent:8000",
        "AIRFLOW_STACK_ECS_ENDPOINT_URL": "http://ecs-api:5000",
        "AIRFLOW_STACK_DEPLOYMENT_CHECK": "2",
        "AIRFLOW_STACK_SCALE_IN_PROTECTION_CHECK": "1",
    }
    try:
        start_worker(stack, environment)
        with stack.api() as api:
            runs = [trigger(api, seconds=20) for _ in range(5)]

            def task_instances() -> list[dict]:
                return [
                    ti
                    for run in runs
                    for ti in api.get(f"/dags/{DAG_ID}/dagRuns/{run}/taskInstances").json()["task_instances"]
                ]

            def running_here() -> list[dict]:
                return [ti for ti in task_instances() if ti["state"] == "running" and ti["hostname"] == "ecs-worker"]

            poll("two tasks run on the ECS worker", lambda: len(running_here()) == 2, 180, container_log)
            deployed = time.time()
            ecs.update_service(cluster=CLUSTER, service="worker", forceNewDeployment=True)
            poll("the worker leaves its queue", lambda: "was replaced by" in container_log(), 60, container_log)
            poll("the worker turns its protection off once idle", lambda: protected_then_not(agent), 120,
                 lambda: f"{protection_states(agent)}\n{container_log()[-4000:]}")  # fmt: skip
            unprotected = time.time() - deployed
            log = container_log()
            (left,) = stamped(log, "deployment drain: deployment")
            print(
                f"left its queue {left - deployed:.1f} s after the new deployment; "
                f"protection off after {unprotected:.1f} s"
            )
            late = [round(t - left, 1) for t in stamped(log, "] received") if t > left + SIGNAL_HANDLING]
            assert not late, f"messages received this many seconds after leaving the queue: {late}\n{log[-4000:]}"
            stack.run("start", "worker")
            for run in runs:
                finish(stack, api, run)
            tis = task_instances()
        on_ecs = [ti for ti in tis if ti["hostname"] == "ecs-worker"]
        assert len(on_ecs) >= 2 and len(on_ecs) < len(tis), [(ti["task_id"], ti["hostname"]) for ti in tis]
        assert {(ti["state"], ti["try_number"]) for ti in tis} == {("success", 1)}, tis
    except AssertionError:
        print(container_log()[-8000:])
        raise
    finally:
        docker("rm", "-f", ECS_API, ECS_AGENT, check=False)
        stop_worker(stack)
