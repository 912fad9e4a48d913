"""The end-to-end fixture and helpers: the real docker-compose.yml, started from empty volumes
under its own project name, ports and secrets, so it never touches a stack started with `make up`.

Every module runs alone: a module that needs S3 task logs or DAGs from dag-sync's releases asks
the stack for them (`Stack.use_s3_logs`, `Stack.use_releases`), which switches them on once per
session; the Makefile's module order only saves restarts. On any failure the services' logs are
printed and saved under test-artifacts/.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from airflow_stack.host import dagpublish, envfile, stackwait

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
PROJECT = "airflow-stack-e2e"
UI_PORT = int(os.environ.get("E2E_UI_PORT", "18080"))
FLOWER_PORT = int(os.environ.get("E2E_FLOWER_PORT", "15555"))
MONITOR_PORT = int(os.environ.get("E2E_MONITOR_PORT", "19108"))
UP_TIMEOUT = 300
DAG_ID = "hello_celery"
S3_BUCKET = "airflow-logs"
S3_PREFIX = "e2e"


class Stack:
    """One compose project, driven through the docker compose CLI."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.env_file = workdir / ".env"
        self.logs_dir = workdir / "logs"
        self.compose = [
            "docker",
            "compose",
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(self.env_file),
            "-p",
            PROJECT,
        ]
        self.releases: Releases | None = None
        self.ui = f"http://127.0.0.1:{UI_PORT}"
        self.flower = f"http://127.0.0.1:{FLOWER_PORT}"

    def write_env(self) -> None:
        uid = envfile.container_uid()
        envfile.write_env_file(self.env_file, uid)
        # The shipped example DAGs plus the suite's own (tests/e2e/dags).
        dags = self.workdir / "dags"
        dags.mkdir(mode=0o755)
        for source in [*(ROOT / "dags").glob("*.py"), *(ROOT / "tests" / "e2e" / "dags").glob("*.py")]:
            shutil.copy(source, dags / source.name)
            (dags / source.name).chmod(0o644)
        # The suite's own Airflow options file (empty until a module writes it), never the
        # checkout's config/airflow.env.
        self.options_file = self.workdir / "airflow.env"
        self.options_file.touch()
        with self.env_file.open("a") as handle:
            handle.write(
                f"AIRFLOW_UI_PORT={UI_PORT}\nFLOWER_PORT={FLOWER_PORT}\nMONITOR_PORT={MONITOR_PORT}\n"
                f"AIRFLOW_LOGS_DIR={self.logs_dir}\nAIRFLOW_DAGS_DIR={dags}\n"
                f"AIRFLOW_ENV_FILE={self.options_file}\n"
            )
        envfile.prepare_dir(self.logs_dir, uid)
        self.reload_env()

    def reload_env(self) -> None:
        self.env = envfile.read_env_file(self.env_file)

    def configure(self, values: dict[str, str], profile: str) -> None:
        """Write `values` into .env, add a compose profile, and bring the stack up to them."""
        profiles = [p for p in self.env.get("COMPOSE_PROFILES", "").split(",") if p]
        for key, value in {**values, "COMPOSE_PROFILES": ",".join(dict.fromkeys([*profiles, profile]))}.items():
            envfile.set_env_value(self.env_file, key, value)
        self.reload_env()
        self.up()

    def use_s3_logs(self) -> None:
        """Task logs in the `s3` profile's moto server, and the log servers on, as on ECS, where
        the log folder is not shared (idempotent: a module may ask again)."""
        if self.env.get("AIRFLOW_STACK_LOGS_S3_URL"):
            return
        self.configure(
            {
                "AIRFLOW_STACK_SERVE_LOGS": "true",
                "AIRFLOW_STACK_LOGS_S3_URL": f"s3://{S3_BUCKET}/{S3_PREFIX}",
                "AIRFLOW_STACK_S3_ENDPOINT_URL": "http://s3:5000",
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
            "s3",
        )

    def use_releases(self) -> Releases:
        """DAGs from dag-sync's releases, with release 1 of `release_probe` live and parsed
        (idempotent: a module may ask again)."""
        if self.releases is None:
            artifacts = self.workdir / "artifacts"
            artifacts.mkdir(mode=0o755)
            self.releases = Releases(self, artifacts)
            self.releases.publish(1)
            self.configure(
                {
                    "AIRFLOW_STACK_DAG_RELEASES_DIR": "/opt/airflow/dag-releases",
                    "AIRFLOW_STACK_ARTIFACTS_DIR": str(artifacts),
                    "AIRFLOW_STACK_DAG_SYNC_INTERVAL": "2",
                },
                "dag-sync",
            )
            self.releases.wait_active("dags-1.0.0")
            with self.api() as api:
                poll(
                    "release 1 parsed",
                    lambda: tasks_of(api) == {"first", "report"},
                    90,
                    lambda: self.logs("dag-processor", "dag-sync"),
                )
        return self.releases

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.compose, *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def python(self, service: str, code: str) -> str:
        """What `code` prints, run by the Python of `service`'s container."""
        return self.run("exec", "-T", service, "python", "-c", code).stdout

    def sql(self, database: str, statement: str) -> str:
        """What `statement` returns (unaligned, tuples only), run by psql in the postgres service."""
        args = ("-U", "airflow", "-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", statement)
        return self.run("exec", "-T", "postgres", "psql", *args).stdout

    def up(self) -> float:
        started = time.monotonic()
        self.run("up", "-d", "--remove-orphans")
        assert stackwait.wait(self.compose, UP_TIMEOUT, stackwait.ONE_SHOT_SERVICES, out=sys.stdout), (
            "stack did not become ready"
        )
        return time.monotonic() - started

    def make(self, *targets: str, check: bool = True, timeout: float = 900, **variables: str):
        """A Makefile target as a user runs it, pointed at this stack's compose project and .env."""
        assigned = [f"{key}={value}" for key, value in variables.items()]
        command = ["make", "--no-print-directory", "-C", str(ROOT), *targets, *assigned,
                   f"COMPOSE={shlex.join(self.compose)}", f"ENV_FILE={self.env_file}"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"make {' '.join(targets)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
        return result

    def logs(self, *services: str, tail: int = 200) -> str:
        return self.run("logs", "--no-color", "--tail", str(tail), *services, check=False).stdout

    def container_hostname(self, service: str) -> str:
        return hostname_of(self.run("ps", "-q", service).stdout.strip())

    def api(self) -> httpx.Client:
        """A REST API client logged in as the admin user from .env."""
        token = httpx.post(
            f"{self.ui}/auth/token",
            json={"username": self.env["AIRFLOW_ADMIN_USERNAME"], "password": self.env["AIRFLOW_ADMIN_PASSWORD"]},
            timeout=30,
        )
        assert token.status_code == 201, token.text
        return httpx.Client(
            base_url=f"{self.ui}/api/v2",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
        )


def docker(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    """The docker CLI, for what compose does not do (a single container, exec as another user)."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def hostname_of(container: str) -> str:
    """The container's hostname: the task instances' `hostname` when it runs a worker."""
    return docker("inspect", "-f", "{{.Config.Hostname}}", container).stdout.strip()


def poll(what: str, probe: Callable[[], object], timeout: float, diagnostics: Callable[[], str]) -> object:
    """Call `probe` until it returns a truthy value; fail with diagnostics after `timeout` s.

    A request that times out or cannot connect counts as "not yet" (the api-server can stall for
    a moment on two busy cores); the last such error is in the failure message."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if last:
                return last
        time.sleep(1)
    pytest.fail(f"{what} not reached within {timeout:.0f} s (last: {last!r})\n{diagnostics()}")


def trigger(stack: Stack, api: httpx.Client, conf: dict | None = None) -> str:
    """Unpause the example DAG once it is parsed and start a run; return its id."""
    poll("DAG parsed", lambda: api.get(f"/dags/{DAG_ID}").status_code == 200, 120, lambda: stack.logs("dag-processor"))
    assert api.patch(f"/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
    created = api.post(f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf or {}})
    assert created.status_code == 200, created.text
    return created.json()["dag_run_id"]


def trigger_and_wait(stack: Stack, api: httpx.Client, conf: dict | None = None) -> str:
    run_id = trigger(stack, api, conf)
    wait_for_run(stack, api, run_id)
    return run_id


def running_greet_log(stack: Stack, api: httpx.Client, seconds: int = 40) -> tuple[str, list[str]]:
    """Start a run whose `greet` stays busy for `seconds`; once it runs with its greeting in its
    log, return the run's id and the log's events (its sources first) as the REST API gives them."""
    run_id = trigger(stack, api, conf={"seconds": seconds})
    greet = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/greet"

    def running_log():
        if api.get(greet).json().get("state") != "running":
            return None
        events = [entry.get("event", "") for entry in api.get(f"{greet}/logs/1").json()["content"]]
        return events if any(f"staying busy for {seconds} s" in event for event in events) else None

    events = poll("greet running with its greeting in the log", running_log, 90, lambda: stack.logs("worker"))
    return run_id, events


def wait_for_run(stack: Stack, api: httpx.Client, run_id: str) -> None:

    def finished():
        state = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    state = poll(f"run {run_id} finished", finished, 180, lambda: stack.logs("scheduler", "worker"))
    assert state == "success", stack.logs("scheduler", "worker")


# -- DAG releases (the dag-sync profile) ------------------------------------------------------
RELEASE_DAG_ID = "release_probe"


def dag_source(version: int, *, extra_tasks: tuple[str, ...] = (), broken: bool = False) -> str:
    lines = [
        f'"""Published by tests/e2e/test_dag_sync.py as release {version}."""',
        "import time",
        "import pendulum",
        "from airflow.sdk import Param, dag, task",
        *(["import module_that_does_not_exist"] if broken else []),
        f'VERSION = "{version}"',
        "",
        '@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False,',
        '     params={"seconds": Param(0, type="integer", minimum=0)})',
        f"def {RELEASE_DAG_ID}():",
        "    @task",
        "    def first(params=None) -> str:",
        '        print(f"first task of release {VERSION}", flush=True)',
        '        time.sleep(int(params["seconds"]))',
        "        return VERSION",
        "",
        "    @task",
        "    def report(seen: str) -> str:",
        '        return f"first ran {seen}, report ran {VERSION}"',
        "",
        "    report(first())",
    ]
    for name in extra_tasks:
        lines += ["", "    @task", f"    def {name}() -> str:", '        return "new task"', "", f"    {name}()"]
    return "\n".join([*lines, "", f"{RELEASE_DAG_ID}()", ""])


class Releases:
    """The folder the local artifact server serves, and dag-sync's view of the release store."""

    def __init__(self, stack: Stack, artifacts: Path):
        self.stack = stack
        self.artifacts = artifacts

    def publish(self, version: int, **options) -> str:
        folder = self.stack.workdir / f"release-{version}"
        folder.mkdir(exist_ok=True)
        (folder / f"{RELEASE_DAG_ID}.py").write_text(dag_source(version, **options))
        dagpublish.publish(folder, f"{version}.0.0", self.artifacts)
        return f"dags-{version}.0.0"

    def status(self) -> dict:
        out = self.stack.run("exec", "-T", "dag-sync", "airflow-stack", "dag-sync", "status").stdout
        return json.loads(out)

    def live_files(self) -> str:
        script = (
            "readlink /opt/airflow/private/dag-releases/current && cd /opt/airflow/private/dag-releases/current/"
            " && find . -type f | sort | xargs sha256sum"
        )
        return self.stack.run("exec", "-T", "dag-sync", "sh", "-c", script).stdout

    def wait_active(self, version: str) -> None:
        poll(
            f"{version} active",
            lambda: self.status()["current_version"] == version,
            60,
            lambda: self.stack.logs("dag-sync", "artifacts"),
        )


def tasks_of(api: httpx.Client) -> set[str]:
    response = api.get(f"/dags/{RELEASE_DAG_ID}/tasks")
    return {t["task_id"] for t in response.json()["tasks"]} if response.status_code == 200 else set()


def trigger_release_probe(api: httpx.Client, seconds: int = 0) -> str:
    assert api.patch(f"/dags/{RELEASE_DAG_ID}", json={"is_paused": False}).status_code == 200
    created = api.post(f"/dags/{RELEASE_DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"seconds": seconds}})
    assert created.status_code == 200, created.text
    return created.json()["dag_run_id"]


def finish(stack: Stack, api: httpx.Client, run_id: str) -> dict[str, str]:
    """Wait for the run; return {task_id: state}, asserting the run succeeded."""

    def done():
        state = api.get(f"/dags/{RELEASE_DAG_ID}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    state = poll(f"run {run_id} finished", done, 180, lambda: stack.logs("scheduler", "worker"))
    tis = api.get(f"/dags/{RELEASE_DAG_ID}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    states = {ti["task_id"]: ti["state"] for ti in tis}
    assert state == "success", (states, stack.logs("worker", tail=80))
    return states


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.session.stash.setdefault("failed", []).append(item.nodeid)
    return report


@pytest.fixture(scope="session")
def stack(request, tmp_path_factory) -> Iterator[Stack]:
    if shutil.which("docker") is None:
        pytest.fail("docker is not installed: the end-to-end suite needs Docker (see README, Prerequisites)")
    stack = Stack(tmp_path_factory.mktemp("stack"))
    stack.write_env()
    stack.run("down", "-v", "--remove-orphans", check=False)
    elapsed = stack.up()
    print(f"\nstack ready from empty volumes in {elapsed:.1f} s")
    yield stack
    if request.session.stash.get("failed", []):
        ARTIFACTS.mkdir(exist_ok=True)
        logs = stack.logs(tail=400)
        (ARTIFACTS / "compose-logs.txt").write_text(logs)
        print(f"\n===== service logs (also in {ARTIFACTS / 'compose-logs.txt'}) =====\n{logs[-60000:]}")
    stack.run("down", "-v", "--remove-orphans", check=False)
