"""The release store's switch, pruning and status; how Airflow is pointed at it; the dag-sync
health probe; publishing (the pointer a poller reads)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_stack import cli
from airflow_stack.checks import healthcheck
from airflow_stack.core.errors import StackError
from airflow_stack.dags import releases
from airflow_stack.dags.dagsource import SourceError, parse_pointer
from airflow_stack.dags.releases import Status, Store, check_version
from airflow_stack.host import dagpublish


def store_with(tmp_path: Path, *versions: str) -> Store:
    store = Store(tmp_path / "store")
    store.prepare()
    for version in versions:
        folder = store.staging / version
        folder.mkdir()
        (folder / "dag.py").write_text(version)
        store.add(folder, version)
    return store


def test_activate_replaces_the_link_atomically_and_prune_keeps_the_current(tmp_path: Path):
    store = store_with(tmp_path, "a", "b", "c", "d")
    store.activate("b")
    assert os.readlink(store.current) == "releases/b" and (store.current / "dag.py").read_text() == "b"
    assert [p.name for p in store.root.iterdir() if p.name.endswith(".tmp")] == []
    removed = store.prune(2, history=["a", "b"])
    # never-activated releases go first (oldest name first), the current one never
    assert removed == ["c", "d"] and store.versions() == ["a", "b"]
    with pytest.raises(StackError, match="is not in"):
        store.activate("zzz")


def test_status_round_trips_and_a_corrupt_record_is_refused_with_the_fix(tmp_path: Path):
    store = store_with(tmp_path, "a")
    store.activate("a")
    store.write_status(Status(source="http://x/LATEST", history=["a"], pinned=True))
    assert store.read_status().current_version == "a" and store.read_status().pinned
    store.status_file.write_text("{not json")
    with pytest.raises(StackError, match="not a valid status record") as error:
        store.read_status()
    assert f"delete {store.status_file}" in error.value.render()


@pytest.mark.parametrize("bad", ["", ".hidden", "-x", "a/b", "a b", "x" * 129, "v1.tmp"])
def test_unsafe_version_names_are_refused(bad: str):
    with pytest.raises(ValueError, match="not a safe folder name"):
        check_version(bad)


def test_dag_sync_health_is_the_age_of_the_last_poll(tmp_path: Path, monkeypatch):
    store = store_with(tmp_path)
    env = {"AIRFLOW_STACK_DAG_RELEASES_DIR": str(store.root)}
    with pytest.raises(healthcheck.Unhealthy, match="no poll recorded"):
        healthcheck.probe("dag-sync", env)
    store.write_status(Status(last_check=releases.now_iso()))
    assert healthcheck.probe("dag-sync", env).startswith("last poll ")
    store.write_status(Status(last_check="2020-01-01T00:00:00Z"))
    with pytest.raises(healthcheck.Unhealthy, match="limit 90 s"):
        healthcheck.probe("dag-sync", env)


def test_status_command_prints_the_record_without_the_source_state(tmp_path: Path, monkeypatch, capsys):
    store = store_with(tmp_path, "dags-1")
    store.activate("dags-1")
    store.write_status(Status(source="s3://b/LATEST", source_state={"etag": "x"}, last_error="boom"))
    monkeypatch.setenv("AIRFLOW_STACK_DAG_RELEASES_DIR", str(store.root))
    assert cli.main(["dag-sync", "status"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["current_version"] == "dags-1" and record["releases"] == ["dags-1"]
    assert record["last_error"] == "boom" and "source_state" not in record


def test_publish_writes_the_artifact_sidecar_and_pointer(tmp_path: Path):
    src = tmp_path / "dags"
    (src / "__pycache__").mkdir(parents=True)
    (src / "dag.py").write_text("x = 1\n")
    (src / "__pycache__" / "dag.cpython-313.pyc").write_bytes(b"junk")
    artifact = dagpublish.publish(src, "2.1.0", tmp_path / "out")
    reference, sha256 = parse_pointer((tmp_path / "out" / "LATEST").read_text(), "LATEST")
    assert reference == artifact.name == "dags-2.1.0.tar.gz"
    assert (tmp_path / "out" / f"{artifact.name}.sha256").read_text().split()[0] == sha256
    import tarfile

    with tarfile.open(artifact) as tar:
        assert tar.getnames() == ["dag.py"]
    with pytest.raises(SourceError, match="does not name an artifact"):
        parse_pointer("# only a comment\n", "LATEST")


def test_prune_never_deletes_the_current_release_even_when_it_is_the_oldest(tmp_path: Path):
    store = store_with(tmp_path, "a", "b", "c")
    store.activate("a")
    # `a` is first in the pruning order (oldest activation), and it is the live release.
    assert store.prune(2, history=["a", "b", "c"]) == []
    assert store.versions() == ["a", "b", "c"] and store.current_version() == "a"
    assert store.prune(1, history=["a", "b", "c"]) == ["b"]
    assert store.versions() == ["a", "c"]
