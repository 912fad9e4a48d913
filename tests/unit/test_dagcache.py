"""The DAG parse cache's own logic, with a stand-in for Airflow's DagBag that imports the file
the way Airflow does (a module per file, the bundle on sys.path): what is reused, what is parsed
afresh (an edited file, an edited helper module, a new version), the fallbacks, the bounds, the
parsing context, and the switch. Against the real Airflow and worker: tests/e2e/test_dag_cache.py.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_stack.worker import dagcache

DAG_VAR, TASK_VAR = "AIRFLOW_PARSING_CONTEXT_DAG_ID", "AIRFLOW_PARSING_CONTEXT_TASK_ID"


class FakeBag:
    """Imports one DAG file like Airflow's DagBag; its `dags` are what the file's DAGS holds."""

    parses = 0

    def __init__(self, *, dag_folder, safe_mode, load_op_links, bundle_path, bundle_name):
        FakeBag.parses += 1
        sys.path.append(str(bundle_path))
        self.dags, self.import_errors = {}, {}
        name = f"unusual_prefix_{abs(hash(dag_folder))}"
        spec = importlib.util.spec_from_file_location(name, dag_folder)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            self.import_errors[dag_folder] = f"Traceback (most recent call last):\n  ...\n{type(exc).__name__}: {exc}"
            return
        self.dags = {
            dag_id: SimpleNamespace(task_dict={t: object() for t in tasks}) for dag_id, tasks in module.DAGS.items()
        }


class FakeBundles:
    def __init__(self, root: Path):
        self.root = root

    def __call__(self):
        return self

    def get_bundle(self, name, version):
        path = self.root / (version or "folder")
        return SimpleNamespace(path=path, initialize=lambda: None)


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    FakeBag.parses = 0
    root = tmp_path / "bundles"
    (root / "folder").mkdir(parents=True)
    cache = dagcache.ParseCache(
        dagcache.Cache(8, 64), FakeBag, FakeBundles(root), (DAG_VAR, TASK_VAR), SimpleNamespace()
    )
    return root / "folder", cache


def write(path: Path, text: str) -> None:
    path.write_text(text)
    # A later edit in the same clock tick must still change the stamp.
    stamp = time.time_ns() + FakeBag.parses * 10**9
    os.utime(path, ns=(stamp, stamp))


def dag_file(word: str, *, helper: bool = False) -> str:
    context = f"CONTEXT = (os.environ.get({DAG_VAR!r}), os.environ.get({TASK_VAR!r}))"
    lines = ["import os", f"WORD = {word!r}", context]
    if helper:
        lines += ["import cache_test_helper", "WORD = cache_test_helper.WORD"]
    lines.append("DAGS = {'probe': ['a', 'b']}")
    return "\n".join(lines) + "\n"


def module_of(entry: dagcache.Entry):
    return next(m for name, m in entry.modules.items() if name.startswith("unusual_prefix_"))


def test_a_file_is_parsed_once_then_reused_until_it_changes(bundle):
    folder, cache = bundle
    write(folder / "probe.py", dag_file("one"))
    first = cache.prepare("dags-folder", None, "probe.py", "probe")
    again = cache.prepare("dags-folder", None, "probe.py", "probe")
    assert again is first and FakeBag.parses == 1
    assert module_of(first).WORD == "one"

    write(folder / "probe.py", dag_file("two"))
    edited = cache.prepare("dags-folder", None, "probe.py", "probe")
    assert FakeBag.parses == 2 and module_of(edited).WORD == "two"


def test_an_edited_helper_module_of_the_bundle_is_imported_afresh(bundle):
    folder, cache = bundle
    write(folder / "cache_test_helper.py", "WORD = 'one'\n")
    write(folder / "probe.py", dag_file("", helper=True))
    assert module_of(cache.prepare("dags-folder", None, "probe.py", "probe")).WORD == "one"
    # The bundle's modules left the pool process's sys.modules (the entry keeps them for tasks).
    assert "cache_test_helper" not in sys.modules
    assert not any(name.startswith("unusual_prefix_") for name in sys.modules)

    write(folder / "cache_test_helper.py", "WORD = 'two'\n")
    assert module_of(cache.prepare("dags-folder", None, "probe.py", "probe")).WORD == "two"
    assert FakeBag.parses == 2


def test_a_new_bundle_version_is_parsed_afresh(bundle):
    folder, cache = bundle
    for version in ("v1", "v2"):
        (folder.parent / version).mkdir()
        write(folder.parent / version / "probe.py", dag_file(version))
    assert module_of(cache.prepare("releases", "v1", "probe.py", "probe")).WORD == "v1"
    assert module_of(cache.prepare("releases", "v2", "probe.py", "probe")).WORD == "v2"
    assert module_of(cache.prepare("releases", "v1", "probe.py", "probe")).WORD == "v1"
    assert FakeBag.parses == 2


def test_the_parse_has_the_dag_id_but_no_task_id_and_leaves_the_environment_as_it_was(bundle, monkeypatch):
    folder, cache = bundle
    monkeypatch.setenv(TASK_VAR, "left-by-someone")
    monkeypatch.delenv(DAG_VAR, raising=False)
    write(folder / "probe.py", dag_file("one"))
    assert module_of(cache.prepare("dags-folder", None, "probe.py", "probe")).CONTEXT == ("probe", None)
    assert os.environ[TASK_VAR] == "left-by-someone" and DAG_VAR not in os.environ


def test_top_level_code_that_fails_outside_a_task_falls_back_once_with_the_reason(bundle, caplog):
    folder, cache = bundle
    write(folder / "probe.py", "raise RuntimeError('needs a task context')\n")
    entry = cache.prepare("dags-folder", None, "probe.py", "probe")
    assert entry.bag is None and "RuntimeError: needs a task context" in entry.problem
    cache.prepare("dags-folder", None, "probe.py", "probe")
    assert FakeBag.parses == 1  # not tried again until the file changes
    lines = [r.getMessage() for r in caplog.records if "probe.py is parsed by each task" in r.getMessage()]
    assert len(lines) == 1 and "needs a task context" in lines[0]


def test_top_level_code_that_asks_the_task_api_falls_back_even_when_it_swallows_the_error(bundle, monkeypatch):
    folder, cache = bundle
    holder = types.ModuleType("fake_task_runner")  # stands for airflow.sdk.execution_time.task_runner
    monkeypatch.setitem(sys.modules, "fake_task_runner", holder)
    cache.task_api_holder = holder
    # Like Variable.get with a default: Airflow catches the failure and returns the default.
    write(
        folder / "probe.py",
        "from fake_task_runner import SUPERVISOR_COMMS\n"
        "try:\n    SUPERVISOR_COMMS.send('GetVariable')\nexcept Exception:\n    pass\n"
        "DAGS = {'probe': ['a']}\n",
    )
    entry = cache.prepare("dags-folder", None, "probe.py", "probe")
    assert entry.bag is None and "asks Airflow's task API" in entry.problem
    assert not hasattr(holder, "SUPERVISOR_COMMS")


def test_a_file_without_the_dag_outside_a_task_falls_back(bundle):
    folder, cache = bundle
    write(folder / "probe.py", "DAGS = {}\n")
    assert "defines no DAG 'probe'" in cache.prepare("dags-folder", None, "probe.py", "probe").problem


def test_the_pending_parse_serves_only_its_own_task(bundle):
    folder, cache = bundle
    write(folder / "probe.py", dag_file("one"))
    cache.pending = cache.prepare("dags-folder", None, "probe.py", "probe")

    def what(task_id, dag_id="probe", version=None, path="probe.py"):
        return SimpleNamespace(
            bundle_info=SimpleNamespace(name="dags-folder", version=version),
            dag_rel_path=path,
            ti=SimpleNamespace(dag_id=dag_id, task_id=task_id),
        )

    assert cache.bag_for(what("a")) is cache.pending.bag
    assert cache.bag_for(what("not-in-the-dag")) is None
    assert cache.bag_for(what("a", version="v9")) is None
    assert cache.bag_for(what("a", path="other.py")) is None
    cache.pending = None
    assert cache.bag_for(what("a")) is None


def test_the_cache_keeps_the_most_recent_entries_within_its_count_and_size():
    cache = dagcache.Cache(max_entries=2, max_mib=100)

    def entry(name: str, mib: float) -> dagcache.Entry:
        return dagcache.Entry(key=("b", None, name, "d"), stamp=(), mib=mib)

    for name in ("one", "two", "three"):
        cache.put(entry(name, 1))
    assert [k[2] for k in cache.entries] == ["two", "three"]
    cache.get(("b", None, "two", "d"))
    cache.put(entry("big", 99.5))
    assert [k[2] for k in cache.entries] == ["big"]  # "two" (recent) + 99.5 > 100; the newest stays
    cache.put(entry("huge", 500))
    assert [k[2] for k in cache.entries] == ["huge"]


def test_the_switch_and_a_bad_setting_leave_airflow_alone():
    assert "off (AIRFLOW_STACK_DAG_CACHE=false)" in dagcache.install({"AIRFLOW_STACK_DAG_CACHE": "false"})
    refused = dagcache.install({"AIRFLOW_STACK_DAG_CACHE_ENTRIES": "many"})
    assert "off, a setting is invalid" in refused and "AIRFLOW_STACK_DAG_CACHE_ENTRIES" in refused
    assert dagcache.ACTIVE is None


def test_without_what_it_wraps_it_turns_itself_off_and_says_why():
    # No Airflow in the unit-test environment: it must refuse to wrap, not fail.
    message = dagcache.install({})
    assert message.startswith("DAG cache: off, this Airflow differs") and "cannot import" in message
    assert dagcache.ACTIVE is None
