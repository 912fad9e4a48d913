"""Tests of the DAGs in ./dags, run by `make dags-test` in the image the DAGs run in.

Put your own beside these: plain pytest, with your DAG folder importable and a throwaway
metadata database, so `dag.test()` works too. docs/dag-authoring.md, "Testing DAGs".
"""

from __future__ import annotations

import pytest
from airflow.dag_processing.dagbag import DagBag


@pytest.fixture(scope="session")
def dagbag() -> DagBag:
    return DagBag()


def test_every_dag_imports(dagbag: DagBag):
    assert dagbag.import_errors == {}


def test_every_dag_has_tasks(dagbag: DagBag):
    assert dagbag.dags, "no DAG found"
    for dag_id, dag in dagbag.dags.items():
        assert dag.tasks, f"{dag_id} has no task"


def test_hello_celery_greets_after_finding_its_worker(dagbag: DagBag):
    dag = dagbag.get_dag("hello_celery")
    assert dag is not None
    assert dag.get_task("greet").upstream_task_ids == {"where_am_i"}
