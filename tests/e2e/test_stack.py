"""The local stack as a user meets it: healthy from empty volumes, a DAG run on the Celery
worker, its log and XCom over the REST API, Flower behind basic auth, the UI in a browser,
refusals that name the problem, and a restart on existing volumes that keeps everything.

The tests share one stack and run in file order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import httpx
import pytest

from airflow_stack.apiserver import sharedlogs
from airflow_stack.host.stackwait import ONE_SHOT_SERVICES, read_states

from .conftest import ARTIFACTS, DAG_ID, Stack, poll, running_greet_log, trigger_and_wait, wait_for_run

AIRFLOW_SERVICES = ["api-server", "scheduler", "dag-processor", "triggerer", "worker", "flower"]


@pytest.fixture(scope="module")
def dag_run(stack: Stack) -> str:
    with stack.api() as api:
        return trigger_and_wait(stack, api)


def test_every_service_healthy_and_init_completed(stack: Stack):
    states = {s.service: s for s in read_states(stack.compose)}
    for service in ["postgres", "redis", *AIRFLOW_SERVICES]:
        assert states[service].state == "running" and states[service].health == "healthy", states[service]
    for job in ONE_SHOT_SERVICES:
        assert states[job].state == "exited" and states[job].exit_code == 0, states[job]
    assert states["log-groomer"].state == "running"
    assert "db-migrate finished" in stack.logs("db-migrate")


def test_containers_run_as_non_root_under_an_init_process(stack: Stack):
    result = stack.run("exec", "-T", "worker", "sh", "-c", "id -u; id -g; cat /proc/1/comm")
    uid, gid, pid1 = result.stdout.split()
    assert uid != "0" and gid == "0" and pid1 == "tini"


def test_the_worker_loads_the_image_celery_hooks(stack: Stack):
    # celeryconfig's `imports` reach the real worker: scale-in protection reports itself off
    # outside ECS (it is tested against a fake ECS agent in tests/unit/test_scaleprotect.py).
    poll(
        "worker hooks loaded",
        lambda: "scale-in protection: off (not on ECS" in stack.logs("worker"),
        60,
        lambda: stack.logs("worker"),
    )
    # The real worker's heap is made immortal before its pool forks (tests/e2e/test_shared_heap.py).
    assert re.search(r"shared heap: \d+ objects made immortal before the pool forks", stack.logs("worker"))


def test_postgres_and_redis_are_not_published(stack: Stack):
    assert stack.run("port", "postgres", "5432", check=False).stdout.strip() in ("", ":0")
    assert stack.run("port", "redis", "6379", check=False).stdout.strip() in ("", ":0")


def test_dag_runs_on_the_celery_worker_and_passes_xcom(stack: Stack, dag_run: str):
    worker_host = stack.container_hostname("worker")
    with stack.api() as api:
        tis = api.get(f"/dags/{DAG_ID}/dagRuns/{dag_run}/taskInstances").json()["task_instances"]
        assert {ti["task_id"]: ti["state"] for ti in tis} == {"where_am_i": "success", "greet": "success"}
        assert {ti["hostname"] for ti in tis} == {worker_host}
        xcom = api.get(f"/dags/{DAG_ID}/dagRuns/{dag_run}/taskInstances/greet/xcomEntries/return_value")
        assert xcom.status_code == 200, xcom.text
        assert xcom.json()["value"] == f"hello from {worker_host}"


def test_task_log_is_readable_through_the_rest_api(stack: Stack, dag_run: str):
    with stack.api() as api:
        log = api.get(
            f"/dags/{DAG_ID}/dagRuns/{dag_run}/taskInstances/greet/logs/1", headers={"Accept": "application/json"}
        )
    assert log.status_code == 200, log.text
    events = [entry.get("event", "") for entry in log.json()["content"]]
    assert any("hello from" in event for event in events), events


def test_a_running_task_log_is_read_from_the_shared_log_folder(stack: Stack, dag_run: str):
    with stack.api() as api:
        run_id, events = running_greet_log(stack, api)
        assert api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/greet").json()["state"] == "running"
        assert any("hello from" in event for event in events)
        # Among the sources: the file in the folder every container mounts, and no log server.
        local = f"/opt/airflow/logs/dag_id={DAG_ID}/run_id={run_id}/"
        assert any(event.startswith(local) for event in events), events[:5]
        assert sharedlogs.SOURCE in events, events[:5]
        assert not any("Could not read served logs" in event for event in events), events[:5]
        wait_for_run(stack, api, run_id)
    assert "Could not read served logs" not in stack.logs("api-server")
    assert "shared logs: task logs read from the log folder only" in stack.logs("api-server")
    assert "airflow serve-logs" not in stack.run("top", "worker", "triggerer").stdout  # no log server process


def test_the_api_server_has_the_airflow_internals_it_replaces_and_a_change_turns_it_off(stack: Stack):
    check = "from airflow_stack.apiserver import sharedlogs; print(sharedlogs.incompatibilities())"
    assert stack.python("api-server", check).strip().endswith("[]")
    changed = (
        "from airflow.utils.log.file_task_handler import FileTaskHandler as H; "
        "H._read_from_logs_server = lambda self, ti, path, log_type: ([], []); "
        "from airflow_stack.apiserver import sharedlogs; print(sharedlogs.install()); "
        "print(H._read_from_logs_server is sharedlogs._from_the_log_folder_only)"
    )
    out = stack.python("api-server", changed)
    assert "shared logs: this Airflow differs" in out and "log_type" in out, out
    assert out.strip().endswith("False"), out


def test_the_scheduler_has_the_airflow_internals_it_wraps_and_a_change_turns_them_off(stack: Stack, dag_run: str):
    # Both are in the running scheduler (the tutorial run above went through them); the loop's
    # recheck is off by default.
    logs = stack.logs("scheduler")
    assert "Celery results: read over a pooled connection" in logs, logs[-3000:]
    assert "scheduler loop: Airflow's idle sleep throughout (AIRFLOW_STACK_SCHEDULER_RECHECK=0)" in logs
    check = (
        "from airflow_stack.scheduler import loopwait, resultsessions; "
        "print(loopwait.incompatibilities() + resultsessions.incompatibilities())"
    )
    assert stack.python("scheduler", check).strip().endswith("[]")
    changed = (
        "from airflow.jobs.scheduler_job_runner import SchedulerJobRunner as S; "
        "S._do_scheduling = lambda self, session, max_tis=None: 0; "
        "from airflow_stack.scheduler import loopwait; "
        "print(loopwait.install({'AIRFLOW_STACK_SCHEDULER_RECHECK': '0.5'})); "
        "print(type(S.__dict__.get('_scheduler_idle_sleep_time')).__name__)"
    )
    out = stack.python("scheduler", changed)
    assert "scheduler loop: Airflow's idle sleep throughout, this Airflow differs" in out, out
    assert "_do_scheduling no longer takes session" in out and out.strip().endswith("NoneType"), out
    changed = (
        "from celery.backends.database.session import SessionManager as M; "
        "M.get_engine = lambda self, dburi, **kwargs: None; "
        "from airflow_stack.scheduler import resultsessions; print(resultsessions.install({}))"
    )
    out = stack.python("scheduler", changed)
    assert "Celery results: a new connection per read (Celery's own)" in out and "no longer has" in out, out


PARSE_TIME_VARIABLE = """
\"\"\"Written by tests/e2e/test_stack.py: a DAG file that reads a Variable when it is parsed.\"\"\"
import pendulum
from airflow.sdk import Variable, dag, task


@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False,
     doc_md=Variable.get("parse_time_setting", default="not read at parse"))
def parse_time_variable():
    @task
    def noop() -> None:
        return None

    noop()


parse_time_variable()
"""


EXECUTION_API_ON_FIRST_USE = """
import json, sys
from airflow.dag_processing.manager import DagFileProcessorManager
from airflow.providers.fab.www import utils
from airflow.providers.fab.www.security_appless import ApplessAirflowSecurityManager
manager = DagFileProcessorManager(max_runs=1)
before = [m for m in ("fastapi", "cadwyn") if m in sys.modules]
api = manager._api_server
from airflow.api_fastapi.app import create_auth_manager
created = create_auth_manager()
print(json.dumps([before, type(api).__name__, "cadwyn" in sys.modules, utils.get_auth_manager() is created]))
"""


def test_the_dag_processor_imports_the_execution_api_only_when_it_is_first_used(stack: Stack):
    # The image's patches lazy-execution-api and lazy-fab-fastapi-app: a manager and FAB's
    # security manager (which syncs DAG permissions) no longer import FastAPI and Cadwyn; the
    # manager's execution API is made on first use, and FAB's get_auth_manager is Airflow's.
    out = stack.python("dag-processor", EXECUTION_API_ON_FIRST_USE)
    assert json.loads(out.strip().splitlines()[-1]) == [[], "InProcessExecutionAPI", True, True], out


def test_the_dag_processor_builds_its_execution_api_when_a_dag_file_first_asks_it(stack: Stack, dag_run: str):
    # The example DAGs read nothing at parse time: the dag-processor has parsed them without it.
    assert "execution API in the dag-processor: built when a DAG file or callback first asks" in stack.logs(
        "dag-processor", tail=2000
    )
    assert "forked processes: the heap is made immortal" in stack.logs("triggerer", tail=2000)
    check = "from airflow_stack.dagprocessor import lazyclient; print(lazyclient.incompatibilities())"
    assert stack.python("dag-processor", check).strip().endswith("[]")
    changed = (
        "from airflow.dag_processing.manager import DagFileProcessorManager as M; "
        "M._create_process = lambda self, dag_file: None; "
        "from airflow_stack.dagprocessor import lazyclient; print(lazyclient.install())"
    )
    out = stack.python("dag-processor", changed)
    assert "built at the first parse (Airflow's own), this Airflow differs" in out, out
    assert "no longer has `client=self.client`" in out, out
    # A DAG file that asks: the dag-processor builds the client then and answers.
    dag_file = Path(stack.env["AIRFLOW_DAGS_DIR"]) / "parse_time_variable.py"
    with stack.api() as api:
        created = api.post("/variables", json={"key": "parse_time_setting", "value": "read at parse"})
        assert created.status_code in (201, 409), created.text
        try:
            dag_file.write_text(PARSE_TIME_VARIABLE.lstrip())
            dag_file.chmod(0o644)
            poll(
                "the Variable read at parse time in the DAG's docs",
                lambda: api.get("/dags/parse_time_variable/details").json().get("doc_md") == "read at parse",
                180,
                lambda: stack.logs("dag-processor"),
            )
        finally:
            dag_file.unlink(missing_ok=True)


def test_the_log_server_is_imported_only_by_a_component_that_starts_it(stack: Stack, dag_run: str):
    # The local stack runs no log server; the scheduler's executor (Celery) serves none either.
    for service in ("scheduler", "triggerer", "worker"):
        assert "log server: imported only if this component starts one" in stack.logs(service, tail=3000), service
        check = f"from airflow_stack.ops import lazylogserver; print(lazylogserver.incompatibilities({service!r}))"
        assert stack.python(service, check).strip().endswith("[]"), service
    check = (
        "import sys; from airflow_stack.ops import lazylogserver; print(lazylogserver.install('scheduler'))\n"
        "import airflow.cli.commands.scheduler_command as c\n"
        "with c._serve_logs(False): print('airflow.utils.serve_logs' in sys.modules)"
    )
    out = stack.python("scheduler", check)
    assert out.strip().endswith("False"), out
    changed = (
        "import airflow.cli.commands.triggerer_command as c; c._serve_logs = lambda skip=False: None; "
        "from airflow_stack.ops import lazylogserver; print(lazylogserver.install('triggerer'))"
    )
    out = stack.python("triggerer", changed)
    assert "log server: imported at start (Airflow's own), this Airflow differs" in out, out
    assert "triggerer_command._serve_logs no longer takes skip_serve_logs alone" in out, out


LIBCST_ON_FIRST_USE = """
import json, sys
import airflow.sdk.bases.operator
from airflow.sdk.definitions._internal.decorators import remove_task_decorator
before = "libcst" in sys.modules
source = '@task.virtualenv(requirements=["pendulum"])\\n@setup\\ndef extract():\\n    return 1\\n'
print(json.dumps([before, remove_task_decorator(source, "@task.virtualenv"), "libcst" in sys.modules]))
"""


def test_the_image_imports_libcst_only_to_rewrite_a_tasks_source(stack: Stack):
    # The image's patch lazy-libcst (image/airflowpatches): every Airflow process imports the
    # task SDK's decorators; libcst comes only with the function that needs it, which still works.
    out = stack.python("worker", LIBCST_ON_FIRST_USE)
    assert json.loads(out.strip().splitlines()[-1]) == [False, "def extract():\n    return 1\n", True], out


SVCS_AIOHTTP_ON_FIRST_USE = """
import json, sys
import airflow.api_fastapi.execution_api.app
import svcs
before = "aiohttp" in sys.modules
from svcs import aiohttp
print(json.dumps([before, aiohttp is svcs.aiohttp, callable(aiohttp.get_registry), "aiohttp" in sys.modules]))
"""


def test_the_execution_api_imports_aiohttp_only_when_svcs_aiohttp_integration_is_asked_for(stack: Stack):
    # The image's patch lazy-svcs-aiohttp: the api-server's execution API imports svcs, which no
    # longer brings aiohttp with it; its aiohttp integration still loads when asked for.
    out = stack.python("api-server", SVCS_AIOHTTP_ON_FIRST_USE)
    assert json.loads(out.strip().splitlines()[-1]) == [False, True, True, True], out


def test_flower_lists_the_worker_behind_basic_auth(stack: Stack, dag_run: str):
    assert httpx.get(f"{stack.flower}/api/workers", timeout=10).status_code == 401
    wrong = httpx.get(f"{stack.flower}/api/workers", auth=(stack.env["FLOWER_USERNAME"], "wrong"), timeout=10)
    assert wrong.status_code == 401
    auth = (stack.env["FLOWER_USERNAME"], stack.env["FLOWER_PASSWORD"])
    workers = httpx.get(f"{stack.flower}/api/workers", params={"refresh": 1}, auth=auth, timeout=30)
    assert workers.status_code == 200
    assert f"celery@{stack.container_hostname('worker')}" in workers.json()


def test_ui_login_in_chromium(stack: Stack):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed in CI (.ci/run installs them)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,900",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        # localhost, not 127.0.0.1: the session cookie is set for [api] base_url's host.
        browser.get(stack.ui.replace("127.0.0.1", "localhost") + "/")
        wait = WebDriverWait(browser, 60)
        wait.until(expected_conditions.presence_of_element_located((By.NAME, "username")))
        browser.find_element(By.NAME, "username").send_keys(stack.env["AIRFLOW_ADMIN_USERNAME"])
        browser.find_element(By.NAME, "password").send_keys(stack.env["AIRFLOW_ADMIN_PASSWORD"])
        browser.find_element(By.CSS_SELECTOR, "[type=submit]").click()
        # Let the login land first: navigating away at once can lose to its redirect to Home.
        wait.until(lambda b: "login" not in b.current_url and not b.find_elements(By.NAME, "username"))
        browser.get(stack.ui.replace("127.0.0.1", "localhost") + "/dags")
        wait.until(lambda b: DAG_ID in b.page_source)
    finally:
        browser.save_screenshot(str(ARTIFACTS / "ui-dags.png"))
        browser.quit()


def test_component_refuses_to_start_when_the_database_never_answers(stack: Stack):
    result = stack.run(
        "run",
        "--rm",
        "--no-deps",
        "-e",
        "AIRFLOW_STACK_WAIT_TIMEOUT=3",
        "-e",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:x@postgres-gone:5432/airflow",
        "dag-processor",
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "PostgreSQL at postgres-gone:5432 did not answer within 3 s" in result.stderr
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in result.stderr


def test_component_refuses_to_start_without_a_required_secret(stack: Stack):
    result = stack.run(
        "run", "--rm", "--no-deps", "-e", "AIRFLOW__API_AUTH__JWT_SECRET=", "scheduler", check=False, timeout=120
    )
    assert result.returncode != 0
    assert "AIRFLOW__API_AUTH__JWT_SECRET" in result.stderr and "fix:" in result.stderr


def test_worker_shuts_down_warmly_on_sigterm(stack: Stack):
    # `docker compose stop` sends SIGTERM to PID 1 (tini), which must hand it to Celery alone.
    stack.run("stop", "worker")
    logs = stack.logs("worker")
    assert "Warm shutdown" in logs, logs[-3000:]
    assert "Cold shutdown" not in logs
    state = {s.service: s for s in read_states(stack.compose)}["worker"]
    assert state.state == "exited" and state.exit_code == 0, state


def test_restart_on_existing_volumes_keeps_runs_and_init_is_idempotent(stack: Stack, dag_run: str):
    stack.run("down")
    elapsed = stack.up()
    print(f"\nstack ready on existing volumes in {elapsed:.1f} s")
    migrate_log = stack.logs("db-migrate")
    assert "already exists" in migrate_log and "db-migrate finished" in migrate_log
    with stack.api() as api:
        runs = api.get(f"/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
        assert {run["dag_run_id"]: run["state"] for run in runs}.get(dag_run) == "success"
        trigger_and_wait(stack, api)
