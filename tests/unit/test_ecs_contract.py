"""One contract for compose and ECS: each ECS container runs the compose service's command, with
its health probe, user and stop grace, and the same Airflow settings. A setting on one side
only must be listed below with its reason, so that a setting added to one file and forgotten
in the other fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from cfnlint.decode import decode

from airflow_stack.core import settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
APPS, _ = decode(str(ROOT / "deploy" / "aws" / "templates" / "apps.yaml"))
WORKERS, _ = decode(str(ROOT / "deploy" / "aws" / "templates" / "workers.yaml"))

# Compose service -> the template holding its ECS container.
COMPONENTS = {
    **dict.fromkeys(
        (
            "api-server",
            "scheduler",
            "dag-processor",
            "triggerer",
            "flower",
            "monitor",
            "dag-sync",
            "db-migrate",
            "bootstrap",
        ),
        APPS,
    ),
    "worker": WORKERS,
}

# On ECS only, and why.
ECS_ONLY = {
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "stated on ECS: the monitor (apps stack) and the workers stack must agree",
    "AIRFLOW_STACK_LOGS_S3_URL": "task logs go to S3 on AWS; locally they do when you set it (docs/operations.md)",
    "AIRFLOW_STACK_DAG_RELEASES_DIR": "DAGs from dag-sync's releases on EFS; locally opt-in with the dag-sync profile",
    "AIRFLOW_STACK_DAG_SYNC_INTERVAL": "30 s on ECS; locally the shorter default shows a publish at once",
    "AIRFLOW_STACK_DAG_SOURCE_TOKEN": "optional on both sides: ECS injects it when DagSourceTokenArn is set",
    "AIRFLOW_STACK_FLOWER_USERNAME": "the basic-auth user; compose puts it into AIRFLOW__CELERY__FLOWER_BASIC_AUTH",
    "AIRFLOW_STACK_BOOTSTRAP_CONTENT": "the bootstrap file from the environment's secret; compose mounts the file",
    "AIRFLOW_STACK_WORKERS_CLUSTER": "the monitor sizes the ECS worker services; compose's workers are scaled by hand",
}
# In compose only, for every component, and why.
COMPOSE_ONLY_EVERYWHERE = {
    "AIRFLOW__CELERY__FLOWER_BASIC_AUTH": "compose shares one environment; on ECS only Flower gets it (its secret)",
    "AUTOSCALE_KEEPALIVE": "Celery's keep-alive of an autoscaled pool; ECS workers have a fixed pool",
    "AIRFLOW_STACK_SERVE_LOGS": "a knob for a shared logs folder, which ECS has not (on by default in compose)",
    "AIRFLOW_STACK_DAG_CACHE": "the off switch of the worker's DAG cache, from .env; ECS workers use its default (on)",
}
# Airflow options every compose Airflow container reads from config/airflow-defaults.env, which
# dag-sync (it only imports DAG files) does not need on ECS.
DEFAULTS_DAG_SYNC_IGNORES = (
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRIES",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRIES",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX",
    "AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS",
    "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_INTERVAL",
    "AIRFLOW__CELERY__TASK_TRACK_STARTED",
)
# In compose only, for one component, and why.
COMPOSE_ONLY = {
    "bootstrap": {
        "AIRFLOW_STACK_BOOTSTRAP_FILE": "compose mounts the file; ECS injects its content from a secret",
    },
    "dag-sync": dict.fromkeys(DEFAULTS_DAG_SYNC_IGNORES, "compose's shared option files; dag-sync only imports DAGs"),
    "worker": {
        settings.SQL_ALCHEMY_CONN.name: "ECS workers hold no database credentials: their result backend is Redis",
    },
    "flower": dict.fromkeys(
        (
            settings.FERNET_KEY.name,
            settings.JWT_SECRET.name,
            settings.API_SECRET_KEY.name,
            settings.SQL_ALCHEMY_CONN.name,
            settings.EXECUTION_API_SERVER_URL.name,
            "AIRFLOW__CORE__AUTH_MANAGER",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
            "AIRFLOW__API__BASE_URL",
            "AWS_DEFAULT_REGION",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRIES",
            "AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN",
            "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX",
            "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_INTERVAL",
            "AIRFLOW__CELERY__TASK_TRACK_STARTED",
        ),
        "Flower reads the broker only",
    ),
}
# The variables that complete a URL setting with its password (airflow_stack.core.settings).
PASSWORD_FOR = {
    settings.DB_PASSWORD.name: [settings.SQL_ALCHEMY_CONN.name],
    settings.REDIS_PASSWORD.name: [settings.BROKER_URL.name, settings.RESULT_BACKEND.name],
    settings.FLOWER_PASSWORD.name: ["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"],
}
# Settings whose value must be the same on both sides (the others name endpoints or secrets).
SAME_VALUE = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
    "AIRFLOW_STACK_MONITOR_INTERVAL",
    "AIRFLOW_STACK_MONITOR_NAMESPACE",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
    "AIRFLOW__CORE__DEFAULT_TASK_RETRIES",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRIES",
    "AIRFLOW__WORKERS__MAX_FAILED_HEARTBEATS",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MIN",
    "AIRFLOW__WORKERS__EXECUTION_API_RETRY_WAIT_MAX",
    "AIRFLOW__DAG_PROCESSOR__STALE_BUNDLE_CLEANUP_INTERVAL",
    "AIRFLOW__CELERY__TASK_TRACK_STARTED",
)
_DEFAULTED = re.compile(r"\$\{\w+:-([^}]*)\}")
_REQUIRED = re.compile(r"\$\{\w+(:\?[^}]*)?\}")


def compose_value(raw: object) -> str | None:
    """The value compose gives without a .env: each `${X:-default}` is its default; a value
    using a required variable (`${X:?...}`, `${X}`) is None, as it comes from .env."""
    text = _DEFAULTED.sub(lambda m: m.group(1), str(raw))
    return None if _REQUIRED.search(text) else text


def env_file_values(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def compose_settings(service: str) -> dict[str, str | None]:
    """Settings compose sets for the service (its env files first, as compose reads them; the
    user's optional file is empty here); knobs left empty by default are not set."""
    values: dict[str, object] = {}
    for entry in COMPOSE[service].get("env_file", []):
        if entry.get("required", True):
            values.update(env_file_values(ROOT / entry["path"]))
    values.update(COMPOSE[service].get("environment", {}))
    return {k: compose_value(v) for k, v in values.items() if compose_value(v) != ""}


def ecs_container(service: str) -> dict:
    template = COMPONENTS[service]
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::ECS::TaskDefinition":
            container = resource["Properties"]["ContainerDefinitions"][0]
            if container["Name"] == service:
                return container
    raise AssertionError(f"no ECS container named {service}")


def ecs_value(template: dict, value: object) -> str | None:
    """A plain value, or a parameter's default; None for values built from the environment."""
    if isinstance(value, dict) and "Ref" in value:
        return (
            str(template["Parameters"].get(value["Ref"], {}).get("Default"))
            if value["Ref"] in template["Parameters"]
            else None
        )
    return None if isinstance(value, dict) else str(value)


def ecs_secrets(container: dict) -> list[str]:
    secrets = container.get("Secrets", [])
    if isinstance(secrets, dict):  # Fn::If: the variables of the branch that injects some
        secrets = next(branch for branch in secrets["Fn::If"][1:] if isinstance(branch, list))
    return [s["Name"] for s in secrets]


def ecs_settings(service: str) -> dict[str, str | None]:
    container = ecs_container(service)
    found = {e["Name"]: ecs_value(COMPONENTS[service], e["Value"]) for e in container.get("Environment", [])}
    for name in ecs_secrets(container):
        for setting in PASSWORD_FOR.get(name, [name]):
            found.setdefault(setting, None)
    return found


DOCKER_DEFAULT_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "NET_RAW",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip


@pytest.mark.parametrize("service", COMPONENTS)
def test_the_same_command_probe_and_user(service: str):
    compose, ecs = COMPOSE[service], ecs_container(service)
    command = ecs["Command"]
    if service == "worker":  # an ECS worker stack serves one queue (its Queue parameter)
        assert command[-2:] == ["--queues", {"Ref": "Queue"}], command
        command = command[:-2]
    assert command == compose["command"]
    # Only dag-sync starts as root, with SETUID and SETGID alone, and turns into uid 50000 at once
    # (its validation sandbox runs DAG code as another uid).
    expected = "0:0" if service == "dag-sync" else "50000:0"
    assert ecs["User"] == compose_value(compose["user"]) == expected
    if service == "dag-sync":
        assert compose["cap_drop"] == ["ALL"] and sorted(compose["cap_add"]) == ["SETGID", "SETUID"]
        dropped = set(ecs["LinuxParameters"]["Capabilities"]["Drop"])
        assert DOCKER_DEFAULT_CAPABILITIES - dropped == {"SETUID", "SETGID"}
        assert compose_value(compose["environment"]["AIRFLOW_STACK_RUN_AS_UID"]) == "50000"
    if "healthcheck" in compose:
        probe = ecs["HealthCheck"]
        assert probe["Command"] == compose["healthcheck"]["test"]
        assert [f"{probe[k]}s" for k in ("Interval", "Timeout", "StartPeriod")] == [
            compose["healthcheck"][k] for k in ("interval", "timeout", "start_period")
        ]
        assert probe["Retries"] == compose["healthcheck"]["retries"]
    else:
        assert "HealthCheck" not in ecs


def test_a_worker_gets_the_same_stop_grace_period():
    grace = compose_value(COMPOSE["worker"]["stop_grace_period"])
    assert f"{ecs_container('worker')['StopTimeout']}s" == grace == "120s"


@pytest.mark.parametrize("service", COMPONENTS)
def test_the_same_settings_or_a_listed_reason(service: str):
    compose, ecs = compose_settings(service), ecs_settings(service)
    only_ecs = sorted(set(ecs) - set(compose) - set(ECS_ONLY))
    only_compose = sorted(set(compose) - set(ecs) - set(COMPOSE_ONLY_EVERYWHERE) - set(COMPOSE_ONLY.get(service, {})))
    assert only_ecs == [], f"{service}: set on ECS only, with no reason in ECS_ONLY"
    assert only_compose == [], f"{service}: set in compose only, with no reason in COMPOSE_ONLY"
    for name in SAME_VALUE:
        if name in compose and name in ecs:
            assert ecs[name] == compose[name], f"{service}: {name} differs"


@pytest.mark.parametrize("service", COMPONENTS)
def test_shared_secrets_and_passwords_come_from_secrets_manager_on_ecs(service: str):
    container = ecs_container(service)
    plain = {e["Name"] for e in container.get("Environment", [])}
    injected = set(ecs_secrets(container))
    for setting in (settings.FERNET_KEY, settings.JWT_SECRET, settings.API_SECRET_KEY):
        assert setting.name not in plain, f"{service}: {setting.name} is a plain environment value"
    for password, urls in PASSWORD_FOR.items():
        assert password not in plain
        for url in urls:
            if url in plain and not url.endswith("FLOWER_BASIC_AUTH"):
                assert password in injected, f"{service}: {url} has no {password} secret to complete it"
