"""DAG deployment end to end, with the stack switched to dag-sync's releases (Stack.use_releases).

The local artifact server (nginx) serves a folder the test publishes into; dag-sync polls it
every 2 s. v1 appears and runs; v2, with a changed DAG, is switched in while a task of a v1
run is running, and that run finishes on v1's code; two releases in quick succession each
show their own DAG structure with their version; a release with an import error is refused
and the live release stays byte-identical; rollback brings v1 back.
"""

from __future__ import annotations

import json

import httpx
import pytest

from airflow_stack.host import dagpublish

from .conftest import RELEASE_DAG_ID as DAG_ID
from .conftest import Releases, Stack, finish, poll, tasks_of
from .conftest import trigger_release_probe as trigger


@pytest.fixture(scope="module")
def releases(stack: Stack) -> Releases:
    return stack.use_releases()


def report(api: httpx.Client, run_id: str) -> str:
    xcom = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/report/xcomEntries/return_value")
    assert xcom.status_code == 200, xcom.text
    return xcom.json()["value"]


def test_v1_is_pulled_and_its_dag_runs(releases: Releases):
    releases.wait_active("dags-1.0.0")
    stack = releases.stack
    assert "activated dags-1.0.0" in stack.logs("dag-sync")
    with stack.api() as api:
        poll("v1 parsed", lambda: tasks_of(api) == {"first", "report"}, 90, lambda: stack.logs("dag-processor"))
        run_id = trigger(api)
        assert finish(stack, api, run_id) == {"first": "success", "report": "success"}
        assert report(api, run_id) == "first ran 1, report ran 1"
        assert api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()["bundle_version"] == "dags-1.0.0"


def test_v2_is_switched_in_while_a_v1_task_runs_and_the_run_stays_on_v1(releases: Releases):
    stack = releases.stack
    with stack.api() as api:
        old_run = trigger(api, seconds=45)
        first = f"/dags/{DAG_ID}/dagRuns/{old_run}/taskInstances/first"
        poll(
            "first task running",
            lambda: api.get(first).json().get("state") == "running",
            90,
            lambda: stack.logs("scheduler", "worker"),
        )

        releases.publish(2, extra_tasks=("added_in_v2",))
        releases.wait_active("dags-2.0.0")
        assert api.get(first).json()["state"] == "running", "the switch must happen while the task runs"
        poll("v2 parsed", lambda: "added_in_v2" in tasks_of(api), 60, lambda: stack.logs("dag-processor"))

        # The run created under v1 finishes on v1's code: `report` starts after the switch.
        assert finish(stack, api, old_run) == {"first": "success", "report": "success"}
        assert report(api, old_run) == "first ran 1, report ran 1"

        new_run = trigger(api)
        assert finish(stack, api, new_run) == {"first": "success", "report": "success", "added_in_v2": "success"}
        assert report(api, new_run) == "first ran 2, report ran 2"


def test_releases_in_quick_succession_keep_each_dag_version_whole(releases: Releases):
    # Airflow's default min_serialized_dag_update_interval (30 s) would record v5's bundle
    # version on the DAG while keeping v4's structure; the release bundle mode turns it off.
    stack = releases.stack
    with stack.api() as api:

        def dag_at(version: str):
            dag = api.get(f"/dags/{DAG_ID}").json()
            return dag if dag.get("bundle_version") == version else None

        releases.publish(4, extra_tasks=("added_in_v2", "added_in_v4"))
        poll("v4 parsed", lambda: dag_at("dags-4.0.0"), 60, lambda: stack.logs("dag-processor", "dag-sync"))
        assert "added_in_v4" in tasks_of(api)
        releases.publish(5, extra_tasks=("added_in_v2", "added_in_v5"))
        poll("v5 parsed", lambda: dag_at("dags-5.0.0"), 60, lambda: stack.logs("dag-processor", "dag-sync"))
        assert {"added_in_v5", "added_in_v2"} <= tasks_of(api) and "added_in_v4" not in tasks_of(api)
        run_id = trigger(api)
        assert finish(stack, api, run_id) == {
            "first": "success",
            "report": "success",
            "added_in_v2": "success",
            "added_in_v5": "success",
        }
        assert report(api, run_id) == "first ran 5, report ran 5"


def test_a_release_with_an_import_error_is_refused_and_nothing_changes(releases: Releases):
    before = releases.live_files()
    releases.publish(6, broken=True)

    def refused():
        status = releases.status()
        return status if status["last_error"] and "module_that_does_not_exist" in status["last_error"] else None

    status = poll("v6 refused", refused, 60, lambda: releases.stack.logs("dag-sync"))
    assert status["current_version"] == "dags-5.0.0"
    assert "import errors" in status["last_error"] and "release_probe.py" in status["last_error"]
    assert "rejected: ValidationFailed" in releases.stack.logs("dag-sync")
    assert releases.live_files() == before
    assert "dags-6.0.0" not in status["releases"]


CRAFTED = """
import json, os, subprocess
report = {"uid": os.getuid(), "wrote": [], "leaked": []}
for target in ("/opt/airflow/private/dag-releases/current/release_probe.py",
               "/opt/airflow/private/dag-releases/status.json", "/opt/airflow/dag-releases/x.py"):
    try:
        with open(target, "a") as handle:
            handle.write("# owned")
        report["wrote"].append(target)
    except OSError:
        pass
report["leaked"] = [k for k in os.environ if k.startswith(("AWS_", "AIRFLOW_STACK_")) or "PASSWORD" in k]
subprocess.Popen(["sleep", "600"], start_new_session=True)
raise RuntimeError("sandbox " + json.dumps(report, sort_keys=True))
"""


def test_dag_code_run_to_validate_a_release_cannot_touch_the_live_one(releases: Releases):
    """The release's DAG file tries to change the live release and the status record, reads the
    environment, starts a process that would outlive it, and raises: it ran as the sandbox's uid,
    changed nothing, saw no credential, and left no process."""
    stack = releases.stack
    before = releases.live_files()
    folder = stack.workdir / "release-7"
    folder.mkdir()
    (folder / "release_probe.py").write_text(CRAFTED)
    dagpublish.publish(folder, "7.0.0", releases.artifacts)

    def refused():
        status = releases.status()
        return status if status["last_error"] and "sandbox {" in status["last_error"] else None

    status = poll("v7 refused", refused, 90, lambda: stack.logs("dag-sync"))
    report = json.loads(status["last_error"].split("sandbox ", 1)[1].split("}", 1)[0] + "}")
    assert report == {"leaked": [], "uid": 50001, "wrote": []}, report
    assert status["current_version"] == "dags-5.0.0" and releases.live_files() == before
    processes = stack.run("exec", "-T", "dag-sync", "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout
    assert "sleep 600" not in processes, processes


def test_rollback_brings_v1_back_and_pins_it(releases: Releases):
    stack = releases.stack
    result = stack.run("exec", "-T", "dag-sync", "airflow-stack", "dag-sync", "rollback", "dags-1.0.0")
    assert "rolled back from dags-5.0.0 to dags-1.0.0" in result.stderr
    status = releases.status()
    assert status["current_version"] == "dags-1.0.0" and status["pinned"] is True
    with stack.api() as api:
        poll("v1 parsed again", lambda: tasks_of(api) == {"first", "report"}, 60, lambda: stack.logs("dag-processor"))
        run_id = trigger(api)
        assert finish(stack, api, run_id) == {"first": "success", "report": "success"}
        assert report(api, run_id) == "first ran 1, report ran 1"
