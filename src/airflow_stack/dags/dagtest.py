"""`airflow-stack dags-test [FOLDER]` (`make dags-test`): run your DAG repository's own pytest
suite in the image your DAGs run in, with your requirements.

The image is the production image plus pytest (the Dockerfile's `dag-tests` stage; never
pushed). Your DAG folder is mounted at /opt/airflow/dags and importable, as are your plugins;
the tests at /opt/airflow/dag-tests (make's DAG_TESTS, default ./dag-tests). Airflow gets a
throwaway SQLite metadata database in the container, migrated before the tests, so that tests
may call `dag.test()`; no stack and no credential is needed. The exit code is pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from airflow_stack.core.errors import StackError, log

DAGS = Path("/opt/airflow/dags")
PLUGINS = Path("/opt/airflow/plugins")


def environment(env: MutableMapping[str, str], scratch: Path) -> dict[str, str]:
    """Airflow pointed at the mounted DAGs and a throwaway database under `scratch`."""
    paths = [str(DAGS), str(PLUGINS), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(paths),
        "AIRFLOW_HOME": str(scratch),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{scratch}/airflow.db",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def main(folder: Path, pytest_args: list[str], env: MutableMapping[str, str]) -> int:
    if not folder.is_dir():
        raise StackError(
            f"the DAG tests folder {folder} does not exist in the container",
            fix="make dags-test DAG_TESTS=path/to/your/tests (it is mounted at /opt/airflow/dag-tests)",
        )
    with tempfile.TemporaryDirectory(prefix="dag-tests-") as scratch:
        test_env = environment(env, Path(scratch))
        log("dags-test: preparing a throwaway SQLite metadata database")
        migrate = subprocess.run(["airflow", "db", "migrate"], env=test_env, capture_output=True, text=True)
        if migrate.returncode != 0:
            sys.stderr.write(migrate.stdout + migrate.stderr)
            raise StackError("dags-test: `airflow db migrate` on the throwaway SQLite database failed (output above)")
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(folder), str(folder)]
        log(f"dags-test: {' '.join(command[1:] + pytest_args)}")
        return subprocess.run([*command, *pytest_args], env=test_env, cwd=folder).returncode
