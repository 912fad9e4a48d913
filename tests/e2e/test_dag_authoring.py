"""A DAG author's day on the real compose file, through the Makefile as a user runs it: a library
from requirements.txt used by a new DAG on the worker, a conflicting pin refused by the build,
a new DAG file listed in seconds, dags-check and dag-artifact refusing a broken folder,
dags-test reporting a failing test, an Airflow option from the options file on the worker,
the bootstrap export round trip, a backup restored after a deletion, and the upgrade check.

The module switches the shared stack to an image built with its own requirements (a tag of
its own, so the suite's image is unchanged) and gives it back afterwards.
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from airflow_stack.host import envfile

from .conftest import ROOT, Stack, poll

pytestmark = pytest.mark.e2e

LIBRARY = "pyjokes"  # in no lock of the project
LIBRARY_VERSION = "0.8.3"
IMAGE = "airflow-stack-e2e-userdeps:latest"
DAG_ID = "uses_a_library"
MARKER = "set-in-the-options-file"


def locked_version(name: str) -> str:
    lock = (ROOT / "uv.lock").read_text()
    return re.search(rf'^name = "{name}"\nversion = "([^"]+)"', lock, re.M)[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def authoring(stack: Stack, tmp_path_factory) -> Iterator[dict[str, str]]:
    """The stack on an image with the module's requirements.txt, and its options file set; the
    make variables that keep later make calls on that image."""
    deps = tmp_path_factory.mktemp("user-deps")
    write(deps / "requirements.txt", f"# a DAG author's library\n{LIBRARY}=={LIBRARY_VERSION}\n")
    write(deps / "packages.txt", "# a Debian package\nfortune-mod\n")
    variables = {"AIRFLOW_IMAGE": IMAGE, "USER_DEPS_DIR": str(deps)}
    stack.make("build", **variables)
    previous = os.environ.get("AIRFLOW_IMAGE")
    os.environ["AIRFLOW_IMAGE"] = IMAGE  # every compose call of the suite
    # DAGs from the folder, also when an earlier module of the session switched to releases.
    releases = stack.env.get("AIRFLOW_STACK_DAG_RELEASES_DIR", "")
    envfile.set_env_value(stack.env_file, "AIRFLOW_STACK_DAG_RELEASES_DIR", "")
    stack.reload_env()
    stack.options_file.write_text(f"AIRFLOW__E2E__MARKER={MARKER}\nAIRFLOW__CORE__DEFAULT_TASK_RETRIES=1\n")
    stack.make("airflow-options", **variables)
    stack.up()
    yield variables
    stack.options_file.write_text("")
    envfile.set_env_value(stack.env_file, "AIRFLOW_STACK_DAG_RELEASES_DIR", releases)
    stack.reload_env()
    if previous is None:
        os.environ.pop("AIRFLOW_IMAGE", None)
    else:
        os.environ["AIRFLOW_IMAGE"] = previous
    stack.up()


def run_dag(stack: Stack, api: httpx.Client, dag_id: str) -> str:
    assert api.patch(f"/dags/{dag_id}", json={"is_paused": False}).status_code == 200
    created = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]

    def finished():
        state = api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    state = poll(f"run {run_id} finished", finished, 180, lambda: stack.logs("scheduler", "worker"))
    assert state == "success", stack.logs("worker", tail=80)
    return run_id


def test_a_library_from_requirements_runs_in_a_new_dag_on_the_worker(stack: Stack, authoring):
    """Also: the new file is listed in seconds, and an option from the options file is seen by
    the task on the worker."""
    write(
        Path(stack.env["AIRFLOW_DAGS_DIR"]) / f"{DAG_ID}.py",
        f'''
        """Written by tests/e2e/test_dag_authoring.py."""
        import os
        from importlib.metadata import version

        import pendulum
        import {LIBRARY}
        from airflow.sdk import dag, task


        @dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False)
        def {DAG_ID}():
            @task
            def use_it() -> dict:
                from airflow.configuration import conf

                return {{
                    "library": version("{LIBRARY}") if {LIBRARY}.get_joke() else None,
                    "marker": conf.get("e2e", "marker", fallback=None),
                    "retries": conf.get("core", "default_task_retries"),
                    "fortune": os.path.exists("/usr/games/fortune"),
                }}

            use_it()


        {DAG_ID}()
        ''',
    )
    written = time.monotonic()
    with stack.api() as api:
        poll(
            f"{DAG_ID} listed by the REST API",
            lambda: api.get(f"/dags/{DAG_ID}").status_code == 200,
            90,  # Airflow's own folder refresh is 300 s
            lambda: stack.logs("dag-processor"),
        )
        print(f"\nnew DAG file listed {time.monotonic() - written:.1f} s after it was written")
        run_id = run_dag(stack, api, DAG_ID)
        xcom = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/use_it/xcomEntries/return_value")
        assert xcom.status_code == 200, xcom.text
        assert xcom.json()["value"] == {"library": LIBRARY_VERSION, "marker": MARKER, "retries": "1", "fortune": True}


def test_the_image_has_no_installer_and_no_test_tools(stack: Stack, authoring):
    result = stack.run("run", "--rm", "--no-deps", "--entrypoint", "sh", "worker", "-c",
                       "ls /opt/airflow/venv/bin; python -c 'import pytest' 2>&1 || true")  # fmt: skip
    tools = result.stdout.split()
    assert "pip" not in tools and "uv" not in tools
    assert "No module named 'pytest'" in result.stdout


def test_a_pin_that_conflicts_with_the_lock_fails_the_build_naming_both_versions(stack: Stack, tmp_path: Path):
    write(tmp_path / "requirements.txt", "pendulum==2.1.2\n")
    write(tmp_path / "packages.txt", "")
    result = stack.make("build", check=False, AIRFLOW_IMAGE="airflow-stack-e2e-conflict:latest",
                        USER_DEPS_DIR=str(tmp_path))  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"pendulum==2.1.2 would change pendulum: wanted ==2.1.2, locked {locked_version('pendulum')}" in output


def check_options(stack: Stack, options: Path):
    """`make airflow-options` with AIRFLOW_ENV_FILE pointing at `options`, then back at the suite's file."""
    envfile.set_env_value(stack.env_file, "AIRFLOW_ENV_FILE", str(options))
    try:
        return stack.make("airflow-options", check=False)
    finally:
        envfile.set_env_value(stack.env_file, "AIRFLOW_ENV_FILE", str(stack.options_file))


def test_an_option_the_stack_wires_is_refused_with_the_setting_named(stack: Stack, tmp_path: Path):
    options = write(tmp_path / "airflow.env", "AIRFLOW__CORE__FERNET_KEY=not-here\nAIRFLOW__core__x=1\n")
    result = check_options(stack, options)
    assert result.returncode != 0
    assert "AIRFLOW__core__x: Airflow reads AIRFLOW__SECTION__KEY in upper case only" in result.stderr
    write(options, "AIRFLOW__CORE__FERNET_KEY=not-here\n")
    result = check_options(stack, options)
    assert result.returncode != 0
    assert "AIRFLOW__CORE__FERNET_KEY: not in api-server" in result.stderr
    assert "worker" in result.stderr


BROKEN = '''
    """A DAG file that cannot be imported."""
    from airflow.sdk import dag
    import module_that_is_nowhere
'''


def test_dags_check_fails_on_a_broken_dag_and_dag_artifact_then_refuses(stack: Stack, authoring, tmp_path: Path):
    dags = tmp_path / "dags"
    write(dags / "hello_celery.py", (ROOT / "dags" / "hello_celery.py").read_text())
    checked = stack.make("dags-check", DAGS=str(dags), **authoring)
    assert "dags-check: OK" in checked.stdout
    write(dags / "broken.py", BROKEN)
    write(dags / "again.py", (ROOT / "dags" / "hello_celery.py").read_text())
    result = stack.make("dags-check", check=False, DAGS=str(dags), **authoring)
    assert result.returncode != 0
    assert "broken.py: ModuleNotFoundError: No module named 'module_that_is_nowhere'" in result.stdout
    assert "again.py: dag_id defined twice" in result.stdout
    assert "slowest files to parse" in result.stdout
    artifacts = tmp_path / "artifacts"
    envfile.set_env_value(stack.env_file, "AIRFLOW_STACK_ARTIFACTS_DIR", str(artifacts))
    published = stack.make("dag-artifact", check=False, DAGS=str(dags), DAG_VERSION="9.9.9", **authoring)
    assert published.returncode != 0
    assert "dags-check: FAILED" in published.stdout
    assert not artifacts.exists() or not any(artifacts.iterdir())


def test_dags_test_runs_the_dag_repositorys_tests_and_reports_a_failure(stack: Stack, authoring, tmp_path: Path):
    dags = tmp_path / "dags"
    write(dags / "hello_celery.py", (ROOT / "dags" / "hello_celery.py").read_text())
    tests = tmp_path / "tests"
    write(
        tests / "test_user.py",
        f"""
        from importlib.metadata import version

        import {LIBRARY}
        from airflow.dag_processing.dagbag import DagBag


        def test_the_dag_folder_imports():
            assert DagBag().import_errors == {{}}


        def test_the_dag_runs_in_process():
            DagBag().get_dag("hello_celery").test()


        def test_a_users_failing_test():
            assert {LIBRARY}.get_joke() and version("{LIBRARY}") == "0.0.0"
        """,
    )
    result = stack.make("dags-test", check=False, DAGS=str(dags), DAG_TESTS=str(tests), **authoring)
    assert result.returncode != 0, result.stdout
    assert "test_user.py::test_a_users_failing_test FAILED" in result.stdout or (
        "FAILED test_user.py::test_a_users_failing_test" in result.stdout
    ), result.stdout[-3000:]
    assert "2 passed" in result.stdout and "1 failed" in result.stdout, result.stdout[-3000:]


def export(stack: Stack, path: Path, **variables: str) -> dict:
    stack.make("bootstrap-export", FILE=str(path), **variables)
    return yaml.safe_load(path.read_text())


def test_export_then_bootstrap_gives_back_the_same_objects(stack: Stack, authoring, tmp_path: Path):
    with stack.api() as api:
        created = api.post(
            "/connections",
            json={"connection_id": "e2e_export", "conn_type": "postgres", "host": "db.example.com", "port": 5432,
                  "login": "reader", "password": "s3cret-pw", "extra": '{"sslmode": "require", "api_key": "k-1"}'},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        assert api.post("/variables", json={"key": "e2e_export_setting", "value": "on"}).status_code == 201
        assert api.post("/variables", json={"key": "e2e_export_password", "value": "pw-2"}).status_code == 201
        assert api.post("/pools", json={"name": "e2e_export_pool", "slots": 3}).status_code == 201
    clear = export(stack, tmp_path / "clear.yaml", INCLUDE_SECRETS="1")
    assert clear["connections"]["e2e_export"] == {
        "conn_type": "postgres", "host": "db.example.com", "login": "reader", "password": "s3cret-pw", "port": 5432,
        "extra": {"sslmode": "require", "api_key": "k-1"},
    }  # fmt: skip
    assert clear["variables"]["e2e_export_password"] == "pw-2" and clear["pools"]["e2e_export_pool"]["slots"] == 3
    export(stack, tmp_path / "refs.yaml")
    referenced = (tmp_path / "refs.yaml").read_text()
    assert "s3cret-pw" not in referenced and "pw-2" not in referenced and "k-1" not in referenced
    assert "password: ${E2E_EXPORT_PASSWORD}" in referenced and "api_key: ${E2E_EXPORT_API_KEY}" in referenced
    with stack.api() as api:
        assert api.delete("/connections/e2e_export").status_code == 204
        assert api.delete("/variables/e2e_export_password").status_code == 204
        assert api.delete("/pools/e2e_export_pool").status_code == 204
    tmp_path.chmod(0o755)  # the bootstrap container's uid reads the file
    (tmp_path / "clear.yaml").chmod(0o644)
    stack.run("run", "--rm", "-v", f"{tmp_path}:/opt/airflow/import:ro",
              "-e", "AIRFLOW_STACK_BOOTSTRAP_FILE=/opt/airflow/import/clear.yaml", "bootstrap")  # fmt: skip
    again = export(stack, tmp_path / "again.yaml", INCLUDE_SECRETS="1")
    assert again == clear


def test_a_backup_restored_gives_back_a_deleted_connection_and_the_cli_works_with_the_stack_down(
    stack: Stack, authoring
):
    with stack.api() as api:
        created = api.post("/connections", json={"connection_id": "e2e_backup", "conn_type": "http", "host": "h"})
        assert created.status_code == 201, created.text
    backup = stack.make("db-backup")
    dump = Path(ROOT / re.search(r"wrote (\S+)", backup.stdout)[1])
    try:
        assert dump.stat().st_mode & 0o077 == 0
        with stack.api() as api:
            assert api.delete("/connections/e2e_backup").status_code == 204
        stack.run("down")
        listed = stack.make("airflow", ARGS="connections list", **authoring)
        assert "aws_default" in listed.stdout and "e2e_backup" not in listed.stdout
        refused = stack.make("db-restore", check=False, FILE=str(dump))
        assert refused.returncode != 0 and "CONFIRM=yes" in refused.stderr
        stack.make("db-restore", FILE=str(dump), CONFIRM="yes", timeout=900)
        with stack.api() as api:
            assert api.get("/connections/e2e_backup").json()["host"] == "h"
    finally:
        dump.unlink(missing_ok=True)


def test_upgrade_check_migrates_a_copy_and_leaves_the_live_database_alone(stack: Stack, authoring):
    def databases() -> str:
        return stack.sql("postgres", "select datname from pg_database order by 1")

    before = stack.sql("airflow", "select * from alembic_version")
    result = stack.make("upgrade-check", **authoring)
    assert "upgrade-check: copied the live database into airflow_upgrade_check" in result.stdout
    assert "upgrade-check: migration OK" in result.stdout and "dags-check OK" in result.stdout, result.stdout
    assert "airflow_upgrade_check" not in databases()
    after = stack.sql("airflow", "select * from alembic_version")
    assert before == after


def test_reset_refuses_without_a_confirmation(stack: Stack):
    result = stack.make("reset", check=False)
    assert result.returncode != 0 and "CONFIRM=yes" in result.stderr
    assert stack.run("ps", "-q", "postgres").stdout.strip()


def test_restart_recreates_one_service_and_waits_for_it(stack: Stack):
    before = stack.run("ps", "-q", "triggerer").stdout.strip()
    stack.make("restart", SERVICE="triggerer")
    after = stack.run("ps", "-q", "triggerer").stdout.strip()
    assert after and after != before
