"""Parses each DAG file once per Celery pool process instead of once per task.

Airflow's supervisor runs in a Celery pool process and forks the task runner, which imports
the task's DAG file again: every task of a 1,000-task DAG builds all 1,000 operators. Installed
in the worker's main process (celery_hooks, before the pool forks), this module wraps two
Airflow functions:

- `supervisor.supervise_task`, in the pool process: before it forks, the DAG file is parsed
  (or found in this process's cache) and held as the pending parse;
- `task_runner.parse`, in the forked task process: when the pending parse is for this task's
  bundle, version, file and DAG, and holds its task, Airflow's own `parse` gets that DagBag
  instead of importing the file. Fork's copy-on-write keeps a task's changes to its operators
  (rendered templates, for example) to itself.

A cache entry is keyed by (bundle name, bundle version, file, DAG id) and checked against the
size and mtime of the file and of every module of the bundle it imported; a new release, a new
version or an edited file is parsed afresh. The bundle's modules are taken out of the pool
process's `sys.modules` after each parse, so the next parse (or a task's own) imports them
fresh, and put back in each task process that uses the entry. The cache is bounded by entries
(AIRFLOW_STACK_DAG_CACHE_ENTRIES) and by the growth of the process's resident memory its parses
caused (AIRFLOW_STACK_DAG_CACHE_MIB), least recently used first out.

The parse in the pool process has the DAG id in Airflow's parsing context but no task id. When
it fails (top-level code that needs a task, like `Variable.get` through the task's API, an
import error, Airflow's import timeout) or anything unexpected happens, the worker logs one line
saying why and the task parses the file itself, as in plain Airflow. The semantic difference is
that top-level code runs once per pool process per version of the file, not once per task.

It relies on Airflow internals; `incompatibilities()` lists what it relies on that this Airflow
does not have, and then `install()` leaves Airflow alone with a warning. AIRFLOW_STACK_DAG_CACHE
=false turns it off.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError
from airflow_stack.dags.dagvalidate import reason_line

log = logging.getLogger(__name__)

Key = tuple[str, str | None, str, str]  # bundle name, bundle version, file in the bundle, DAG id
Stamp = tuple[tuple[str, int, int], ...]  # (path, mtime_ns, size) of the file and its bundle modules

# What the wrappers rely on: the wrapped functions' parameters, and the names they use.
SUPERVISE_TASK_PARAMETERS = ("ti", "bundle_info", "dag_rel_path")
PARSE_PARAMETERS = ("what", "log")
BUNDLE_DAG_BAG_PARAMETERS = ("dag_folder", "safe_mode", "load_op_links", "bundle_path", "bundle_name")
STARTUP_DETAILS_FIELDS = ("ti", "dag_rel_path", "bundle_info")


@dataclass
class Entry:
    """One parse of a file in this pool process: its DagBag, or why there is none."""

    key: Key
    stamp: Stamp
    bundle_path: str = ""
    bag: Any = None
    modules: dict[str, Any] = field(default_factory=dict)
    mib: float = 0.0
    problem: str = ""


class Cache:
    """Entries of one pool process, least recently used first."""

    def __init__(self, max_entries: int, max_mib: float):
        self.max_entries = max_entries
        self.max_mib = max_mib
        self.entries: OrderedDict[Key, Entry] = OrderedDict()

    def get(self, key: Key) -> Entry | None:
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def put(self, entry: Entry) -> None:
        self.entries[entry.key] = entry
        self.entries.move_to_end(entry.key)
        while len(self.entries) > self.max_entries or (
            len(self.entries) > 1 and sum(e.mib for e in self.entries.values()) > self.max_mib
        ):
            self.entries.popitem(last=False)


def stamp_of(paths: list[str]) -> Stamp:
    stamps = []
    for path in sorted(set(paths)):
        try:
            status = os.stat(path)
        except OSError:
            stamps.append((path, -1, -1))
        else:
            stamps.append((path, status.st_mtime_ns, status.st_size))
    return tuple(stamps)


def resident_mib() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


class TaskApiAsked(RuntimeError):
    pass


class NoTaskApi:
    """Stands in for the task process's channel to its supervisor while the pool process parses:
    top-level code that asks for a Variable, a Connection or an XCom would otherwise get
    Airflow's "not found" (and a default) here, where the task would get the value."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.asked.append(name)
        raise TaskApiAsked("only a task process can ask Airflow's task API")


class ParseCache:
    """The pool-process side: parse before the fork, and the pending parse the task inherits."""

    def __init__(
        self, cache: Cache, bag_class: Any, bundles: Any, parsing_context: tuple[str, str], task_api_holder: Any
    ):
        self.cache = cache
        self.bag_class = bag_class
        self.bundles = bundles  # DagBundlesManager
        self.dag_id_variable, self.task_id_variable = parsing_context
        self.task_api_holder = task_api_holder  # task_runner, whose SUPERVISOR_COMMS tasks use
        self.bundle_paths: dict[tuple[str, str | None], str] = {}
        self.pending: Entry | None = None

    def bundle_path(self, name: str, version: str | None) -> str:
        known = self.bundle_paths.get((name, version))
        if known is None:
            bundle = self.bundles().get_bundle(name=name, version=version)
            bundle.initialize()
            known = os.fspath(bundle.path)
            if version is not None:  # an unversioned bundle's path may move (a new release)
                self.bundle_paths[(name, version)] = known
        return known

    def prepare(self, bundle_name: str, bundle_version: str | None, dag_rel_path: str, dag_id: str) -> Entry:
        """The entry for this task: from the cache when nothing changed, else parsed now."""
        key = (bundle_name, bundle_version, os.fspath(dag_rel_path), dag_id)
        bundle_path = self.bundle_path(bundle_name, bundle_version)
        file = os.path.join(bundle_path, key[2])
        cached = self.cache.get(key)
        if (
            cached is not None
            and cached.bundle_path == bundle_path
            and cached.stamp == stamp_of([path for path, _, _ in cached.stamp])
        ):
            return cached
        entry = self.parse(key, bundle_path, file)
        self.cache.put(entry)
        return entry

    def parse(self, key: Key, bundle_path: str, file: str) -> Entry:
        dag_id = key[3]
        modules_before = set(sys.modules)
        path_before = list(sys.path)
        context_before = {v: os.environ.get(v) for v in (self.dag_id_variable, self.task_id_variable)}
        os.environ[self.dag_id_variable] = dag_id
        os.environ.pop(self.task_id_variable, None)
        task_api = NoTaskApi()
        self.task_api_holder.SUPERVISOR_COMMS = task_api
        started, mib_before = time.monotonic(), resident_mib()
        try:
            bag = self.bag_class(
                dag_folder=file,
                safe_mode=False,
                load_op_links=False,
                bundle_path=Path(bundle_path),
                bundle_name=key[0],
            )
        finally:
            for variable, value in context_before.items():
                if value is None:
                    os.environ.pop(variable, None)
                else:
                    os.environ[variable] = value
            sys.path[:] = path_before
            del self.task_api_holder.SUPERVISOR_COMMS
        seconds, mib = time.monotonic() - started, max(resident_mib() - mib_before, 0.0)
        # The bundle's own modules leave this process's sys.modules: the next parse imports
        # them afresh (an edited helper), and each task process gets them back from the entry.
        root = os.path.join(os.path.realpath(bundle_path), "")
        modules = {}
        for name in set(sys.modules) - modules_before:
            module = sys.modules[name]
            origin = getattr(module, "__file__", None)
            if origin and os.path.realpath(origin).startswith(root):
                modules[name] = sys.modules.pop(name)
        stamp = stamp_of([file, *(m.__file__ for m in modules.values())])
        entry = Entry(key=key, stamp=stamp, bundle_path=bundle_path)
        if task_api.asked:
            entry.problem = (
                "its top-level code asks Airflow's task API (a Variable, a Connection, an XCom), which only a task can"
            )
        elif bag.import_errors:
            error = next(iter(bag.import_errors.values()))
            entry.problem = f"its top-level code failed outside a task: {reason_line(error)}"
        elif dag_id not in bag.dags:
            entry.problem = f"it defines no DAG {dag_id!r} outside a task"
        if entry.problem:
            log.warning(
                "DAG cache: %s is parsed by each task, as in plain Airflow: %s (AIRFLOW_STACK_DAG_CACHE)",
                key[2],
                entry.problem,
            )
            return entry
        entry.bag, entry.modules, entry.mib = bag, modules, mib
        log.info(
            "DAG cache: parsed %s (%s, version %s) once for this pool process in %.2f s, about %.0f MiB",
            key[2],
            key[0],
            key[1],
            seconds,
            mib,
        )
        return entry

    def bag_for(self, what: Any) -> Any:
        """In the task process: the pending DagBag if it serves this task, else None."""
        entry = self.pending
        if entry is None or entry.bag is None:
            return None
        key = (what.bundle_info.name, what.bundle_info.version, os.fspath(what.dag_rel_path), what.ti.dag_id)
        if entry.key != key or what.ti.task_id not in entry.bag.dags[key[3]].task_dict:
            return None
        return entry.bag


def incompatibilities() -> list[str]:
    """What the wrappers rely on that this Airflow does not have (empty when all is there)."""
    problems = []
    try:
        from airflow.dag_processing import dagbag
        from airflow.sdk.definitions.context import (
            _AIRFLOW_PARSING_CONTEXT_DAG_ID,  # noqa: F401
            _AIRFLOW_PARSING_CONTEXT_TASK_ID,  # noqa: F401
        )
        from airflow.sdk.execution_time import comms, supervisor, task_runner
    except ImportError as exc:
        return [f"cannot import what it wraps: {exc}"]

    def parameters(function: Any) -> set[str]:
        return set(inspect.signature(function).parameters)

    dag_bag_init = getattr(getattr(dagbag, "DagBag", None), "__init__", None)
    checks = [
        ("supervisor.supervise_task", getattr(supervisor, "supervise_task", None), SUPERVISE_TASK_PARAMETERS),
        ("task_runner.parse", getattr(task_runner, "parse", None), PARSE_PARAMETERS),
        ("dagbag.DagBag.__init__", dag_bag_init, BUNDLE_DAG_BAG_PARAMETERS),
    ]
    for name, function, wanted in checks:
        if function is None:
            problems.append(f"{name} is gone")
        elif missing := [p for p in wanted if p not in parameters(function)]:
            problems.append(f"{name} no longer takes {', '.join(missing)}")
    if not hasattr(dagbag, "BundleDagBag"):
        problems.append("dagbag.BundleDagBag is gone")
    parse = getattr(task_runner, "parse", None)
    if parse is not None and "BundleDagBag" not in inspect.unwrap(parse).__code__.co_varnames:
        problems.append("task_runner.parse no longer builds a BundleDagBag")
    startup = getattr(task_runner, "startup", None)
    if startup is None or "parse" not in inspect.unwrap(startup).__code__.co_names:
        problems.append("task_runner.startup no longer calls parse")
    fields = getattr(comms.StartupDetails, "model_fields", {})
    if missing := [f for f in STARTUP_DETAILS_FIELDS if f not in fields]:
        problems.append(f"StartupDetails has no {', '.join(missing)}")
    main = getattr(task_runner, "main", None)
    if main is None or "SUPERVISOR_COMMS" not in inspect.unwrap(main).__code__.co_names:
        problems.append("task_runner.main no longer sets SUPERVISOR_COMMS")
    if hasattr(task_runner, "SUPERVISOR_COMMS"):
        problems.append("task_runner.SUPERVISOR_COMMS is set in the worker's main process")
    if not hasattr(task_runner, "DagBundlesManager"):
        problems.append("task_runner no longer uses DagBundlesManager")
    return problems


ACTIVE: ParseCache | None = None


def install(env: dict[str, str] | None = None) -> str:
    """Wrap Airflow's functions in this process (the worker's main process, before the pool
    forks); returns what it did, for the worker's log."""
    global ACTIVE
    env = os.environ if env is None else env
    try:
        if not settings.DAG_CACHE.read(env):
            return "DAG cache: off (AIRFLOW_STACK_DAG_CACHE=false); each task parses its DAG file"
        max_entries = settings.DAG_CACHE_ENTRIES.read(env)
        max_mib = settings.DAG_CACHE_MIB.read(env)
    except StackError as exc:
        return f"DAG cache: off, a setting is invalid: {exc.problem} (fix: {exc.fix})"
    if problems := incompatibilities():
        return (
            "DAG cache: off, this Airflow differs from the one it was written for: "
            + "; ".join(problems)
            + ". Each task parses its DAG file; set AIRFLOW_STACK_DAG_CACHE=false to silence this."
        )
    from airflow.dag_processing import dagbag
    from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID, _AIRFLOW_PARSING_CONTEXT_TASK_ID
    from airflow.sdk.execution_time import supervisor, task_runner

    cache = ParseCache(
        Cache(max_entries, max_mib),
        dagbag.BundleDagBag,
        task_runner.DagBundlesManager,
        (_AIRFLOW_PARSING_CONTEXT_DAG_ID, _AIRFLOW_PARSING_CONTEXT_TASK_ID),
        task_runner,
    )
    supervise_task, parse, bag_class = supervisor.supervise_task, task_runner.parse, dagbag.BundleDagBag

    def supervise_task_with_cache(**kwargs: Any) -> Any:
        cache.pending = None
        try:
            ti = kwargs["ti"]
            bundle = kwargs["bundle_info"]
            cache.pending = cache.prepare(bundle.name, bundle.version, kwargs["dag_rel_path"], ti.dag_id)
        except (Exception, SystemExit) as exc:  # DAG code may call sys.exit; the task parses the file
            log.warning("DAG cache: not used for this task, the task parses its DAG file: %r", exc)
        try:
            return supervise_task(**kwargs)
        finally:
            cache.pending = None

    def parse_with_cache(what: Any, log: Any) -> Any:
        try:
            bag = cache.bag_for(what)
        except Exception as exc:
            log.warning("DAG cache: not used, the task parses its DAG file", error=repr(exc))
            bag = None
        if bag is None:
            return parse(what, log)
        folder = os.path.join(cache.pending.bundle_path, os.fspath(what.dag_rel_path))
        sys.modules.update(cache.pending.modules)

        def cached_bag(*args: Any, **kwargs: Any) -> Any:
            if not args and os.fspath(kwargs.get("dag_folder", "")) == folder:
                return bag
            return bag_class(*args, **kwargs)

        dagbag.BundleDagBag = cached_bag  # this task process only: it was forked for this task
        log.info("DAG file parsed once by the worker's pool process, not again for this task (AIRFLOW_STACK_DAG_CACHE)")
        return parse(what, log)

    supervisor.supervise_task = supervise_task_with_cache
    task_runner.parse = parse_with_cache
    ACTIVE = cache
    return f"DAG cache: on, up to {max_entries} DAG files and {max_mib:g} MiB per pool process"
