"""How the dag-processor is pointed at DAGs: the folder's fast refresh, or the release bundle."""

from __future__ import annotations

import json

import pytest

from airflow_stack.core.errors import StackError
from airflow_stack.dags import parsing


def test_the_dag_folder_is_listed_every_refresh_not_every_five_minutes():
    env: dict[str, str] = {}
    parsing.configure_airflow(env)
    assert env == {
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "2",
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
    }
    env = {"AIRFLOW_STACK_DAG_REFRESH_INTERVAL": "10", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60"}
    parsing.configure_airflow(env)
    assert env["AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"] == "60"  # an explicit Airflow option wins
    assert env["AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL"] == "10"


def test_the_release_store_replaces_the_folder_bundle():
    env = {"AIRFLOW_STACK_DAG_RELEASES_DIR": "/opt/airflow/dag-releases"}
    parsing.configure_airflow(env)
    bundle = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    assert bundle == [
        {
            "name": "dags-folder",
            "classpath": "airflow_stack.dags.dagbundle.ReleaseDagBundle",
            "kwargs": {"releases_dir": "/opt/airflow/dag-releases", "refresh_interval": 2},
        }
    ]
    assert "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL" not in env
    assert env["AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL"] == "2"
    assert env["AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"] == "0"
    explicit = {"AIRFLOW_STACK_DAG_RELEASES_DIR": "/x", "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": "[]"}
    parsing.configure_airflow(explicit)
    assert explicit["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] == "[]"


def test_a_refresh_of_zero_is_refused_with_the_setting_named():
    with pytest.raises(StackError, match="AIRFLOW_STACK_DAG_REFRESH_INTERVAL"):
        parsing.configure_airflow({"AIRFLOW_STACK_DAG_REFRESH_INTERVAL": "0"})
