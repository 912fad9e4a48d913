"""The worker's DAG parse cache on the real compose file, with DAGs written for the purpose: each
pool process parses a file once and its tasks use that parse (the parse's pid is not the task's),
keep their changes to module state to themselves, and run the new code once the file or a helper
module of the DAG folder is edited; top-level code that needs a task (a Variable through the
task API) falls back to the task's own parse with the Variable's value; the switch turns it off;
and the Airflow internals it and the supervisor's exit wait (worker.taskexit) wrap are the ones
the image has. The supervisor's first heartbeat (worker.firstheartbeat): a task shorter than the
heartbeat interval sends none, a longer one still does.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airflow_stack.host import envfile

from .conftest import Stack, poll

pytestmark = pytest.mark.e2e

MAPPED = 20  # more tasks than the worker's 16 pool processes: some process runs two or more

PROBE = """
    \"\"\"Written by tests/e2e/test_dag_cache.py.\"\"\"
    import os

    import cache_e2e_helper
    import pendulum
    from airflow.sdk import dag, get_current_context, task

    VERSION = {version}
    PARSED_IN = os.getpid()
    SEEN = []


    @dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
    def cache_e2e_probe():
        @task
        def probe(i: int) -> dict:
            SEEN.append(i)  # module state of the parse: must not leak into the next task
            this_dag = get_current_context()["dag"]  # the parse's DAG object, changed in place
            this_dag.doc_md = (this_dag.doc_md or "") + f"[{{i}}]"
            return {{"version": VERSION, "word": cache_e2e_helper.WORD, "parsed_in": PARSED_IN,
                    "pid": os.getpid(), "seen": list(SEEN), "doc_md": this_dag.doc_md}}

        probe.expand(i=list(range({mapped})))


    cache_e2e_probe()
"""

NEEDS_A_TASK = """
    \"\"\"Written by tests/e2e/test_dag_cache.py: top-level code that only a task can run.\"\"\"
    import os

    import pendulum
    from airflow.sdk import Variable, dag, task

    SETTING = Variable.get("cache_e2e_setting", default="not-found-at-parse")
    PARSED_IN = os.getpid()


    @dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
    def cache_e2e_needs_a_task():
        @task
        def show() -> dict:
            return {"setting": SETTING, "parsed_in": PARSED_IN, "pid": os.getpid()}

        show()


    cache_e2e_needs_a_task()
"""


HEARTBEATS = """
    \"\"\"Written by tests/e2e/test_dag_cache.py: a task shorter than the heartbeat interval, one longer.\"\"\"
    import time

    import pendulum
    from airflow.sdk import dag, get_current_context, task


    @dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
    def cache_e2e_heartbeats():
        @task
        def quick() -> dict:
            return {"task": "quick", "ti": str(get_current_context()["ti"].id)}

        @task
        def slow() -> dict:
            time.sleep(12)  # [workers] min_heartbeat_interval is 5 s
            return {"task": "slow", "ti": str(get_current_context()["ti"].id)}

        quick()
        slow()


    cache_e2e_heartbeats()
"""


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(0o644)


@pytest.fixture(scope="module")
def dags(stack: Stack) -> Iterator[Path]:
    """DAGs from the folder (also after a module that switched the stack to releases)."""
    if stack.env.get("AIRFLOW_STACK_DAG_RELEASES_DIR"):
        envfile.set_env_value(stack.env_file, "AIRFLOW_STACK_DAG_RELEASES_DIR", "")
        stack.reload_env()
        stack.up()
    folder = Path(stack.env["AIRFLOW_DAGS_DIR"])
    yield folder
    for name in ("cache_e2e_probe.py", "cache_e2e_helper.py", "cache_e2e_needs_a_task.py", "cache_e2e_heartbeats.py"):
        (folder / name).unlink(missing_ok=True)


def run_and_collect(stack: Stack, api: httpx.Client, dag_id: str) -> list[dict]:
    """Trigger the DAG once it is listed, wait for success, return each task's XCom."""
    poll(f"{dag_id} listed", lambda: api.get(f"/dags/{dag_id}").status_code == 200, 120,
         lambda: stack.logs("dag-processor"))  # fmt: skip
    assert api.patch(f"/dags/{dag_id}", json={"is_paused": False}).status_code == 200
    created = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    assert created.status_code == 200, created.text
    run = f"/dags/{dag_id}/dagRuns/{created.json()['dag_run_id']}"

    def finished():
        state = api.get(run).json()["state"]
        return state if state in ("success", "failed") else None

    state = poll(f"{dag_id} run finished", finished, 240, lambda: stack.logs("scheduler", "worker"))
    tis = api.get(f"{run}/taskInstances", params={"limit": 100}).json()["task_instances"]
    assert state == "success", ([(t["task_id"], t["map_index"], t["state"]) for t in tis], stack.logs("worker"))
    values = []
    for ti in tis:
        xcom = api.get(f"{run}/taskInstances/{ti['task_id']}/xcomEntries/return_value",
                       params={"map_index": ti["map_index"]})  # fmt: skip
        assert xcom.status_code == 200, xcom.text
        values.append(xcom.json()["value"])
    return values


def test_each_pool_process_parses_once_and_a_task_keeps_its_changes_to_itself(stack: Stack, dags: Path):
    write(dags / "cache_e2e_helper.py", 'WORD = "one"\n')
    write(dags / "cache_e2e_probe.py", PROBE.format(version=1, mapped=MAPPED))
    with stack.api() as api:
        results = run_and_collect(stack, api, "cache_e2e_probe")
    assert len(results) == MAPPED
    assert {(r["version"], r["word"]) for r in results} == {(1, "one")}
    # Parsed by the pool process the task forked from, not by the task itself...
    assert all(r["parsed_in"] != r["pid"] for r in results), results
    # ...once per pool process: 20 tasks, at most 16 processes, so some parse served several tasks.
    assert len({r["parsed_in"] for r in results}) < MAPPED, results
    # What one task changed (the module's list, the DAG object) is not seen by the next task of
    # that process.
    assert sorted(len(r["seen"]) for r in results) == [1] * MAPPED, results
    assert all(r["doc_md"] == f"[{r['seen'][0]}]" for r in results), results


def test_an_edited_dag_file_or_helper_module_runs_its_new_code(stack: Stack, dags: Path):
    write(dags / "cache_e2e_helper.py", 'WORD = "two"\n')
    write(dags / "cache_e2e_probe.py", PROBE.format(version=2, mapped=MAPPED))
    with stack.api() as api:
        results = run_and_collect(stack, api, "cache_e2e_probe")
    assert {(r["version"], r["word"]) for r in results} == {(2, "two")}, results
    # The helper alone changes: still picked up.
    write(dags / "cache_e2e_helper.py", 'WORD = "three"\n')
    with stack.api() as api:
        results = run_and_collect(stack, api, "cache_e2e_probe")
    assert {(r["version"], r["word"]) for r in results} == {(2, "three")}, results


def test_top_level_code_that_needs_a_task_falls_back_to_the_tasks_own_parse(stack: Stack, dags: Path):
    with stack.api() as api:
        created = api.post("/variables", json={"key": "cache_e2e_setting", "value": "from-the-api"})
        assert created.status_code in (201, 409), created.text
        write(dags / "cache_e2e_needs_a_task.py", NEEDS_A_TASK)
        [result] = run_and_collect(stack, api, "cache_e2e_needs_a_task")
    # Plain Airflow's behaviour: the task parsed the file itself and read the Variable.
    assert result["setting"] == "from-the-api" and result["parsed_in"] == result["pid"], result
    logs = stack.logs("worker", tail=2000)
    assert "DAG cache: cache_e2e_needs_a_task.py is parsed by each task" in logs, logs[-3000:]
    assert "asks Airflow's task API" in logs


def test_the_image_has_the_airflow_internals_the_worker_wraps_and_a_change_turns_them_off(stack: Stack):
    check = (
        "from airflow_stack.worker import dagcache, firstheartbeat, taskexit; from airflow_stack.ops import logfiles; "
        "print(dagcache.incompatibilities() + taskexit.incompatibilities() + firstheartbeat.incompatibilities() "
        "+ logfiles.incompatibilities('worker'))"
    )
    assert stack.python("worker", check).strip().endswith("[]")
    warm = "from airflow_stack.worker import taskwarmup; print(taskwarmup.warm_api_client())"
    assert stack.python("worker", warm).strip().endswith("True")
    changed = (
        "import airflow.sdk.execution_time.task_runner as t; t.parse = lambda what: None; "
        "from airflow_stack.worker import dagcache; print(dagcache.install({})); print(dagcache.ACTIVE)"
    )
    out = stack.python("worker", changed)
    assert "DAG cache: off, this Airflow differs" in out and "task_runner.parse no longer takes log" in out, out
    assert out.strip().endswith("None")
    changed = (
        "from airflow.sdk.execution_time.supervisor import ActivitySubprocess as A; "
        "A._service_subprocess = lambda self, max_wait_time: None; "
        "from airflow_stack.worker import taskexit; print(taskexit.install())"
    )
    out = stack.python("worker", changed)
    assert "task exit: Airflow's own wait" in out and "no longer takes max_wait_time" in out, out
    changed = (
        "from airflow.sdk.execution_time.supervisor import ActivitySubprocess as A; "
        "A._send_heartbeat_if_needed = lambda self: None; "
        "from airflow_stack.worker import firstheartbeat; print(firstheartbeat.install())"
    )
    out = stack.python("worker", changed)
    assert "first heartbeat: Airflow's own" in out and "_send_heartbeat_if_needed no longer has" in out, out
    logs = stack.logs("worker", tail=5000)
    assert "DAG cache: on" in logs and "task exit: the supervisor waits on the task process" in logs
    assert "first heartbeat: one heartbeat interval after the task's start" in logs


def test_a_task_shorter_than_the_heartbeat_interval_sends_no_heartbeat_a_longer_one_does(stack: Stack, dags: Path):
    write(dags / "cache_e2e_heartbeats.py", HEARTBEATS)
    with stack.api() as api:
        results = {r["task"]: r["ti"] for r in run_and_collect(stack, api, "cache_e2e_heartbeats")}
    access = stack.logs("api-server", tail=20000)

    def heartbeats(ti: str) -> int:
        return access.count(f"path=/execution/task-instances/{ti}/heartbeat ")

    assert f"path=/execution/task-instances/{results['quick']}/run " in access, access[-3000:]
    assert heartbeats(results["quick"]) == 0, access[-3000:]
    assert heartbeats(results["slow"]) >= 1, access[-3000:]


def test_the_switch_turns_it_off(stack: Stack, dags: Path):
    write(dags / "cache_e2e_probe.py", PROBE.format(version=3, mapped=MAPPED))
    envfile.set_env_value(stack.env_file, "AIRFLOW_STACK_DAG_CACHE", "false")
    stack.reload_env()
    try:
        stack.make("restart", SERVICE="worker")
        assert "DAG cache: off (AIRFLOW_STACK_DAG_CACHE=false)" in stack.logs("worker")
        with stack.api() as api:
            results = run_and_collect(stack, api, "cache_e2e_probe")
        assert {r["version"] for r in results} == {3}
        assert all(r["parsed_in"] == r["pid"] for r in results), results
    finally:
        envfile.set_env_value(stack.env_file, "AIRFLOW_STACK_DAG_CACHE", "")
        stack.reload_env()
        stack.make("restart", SERVICE="worker")
