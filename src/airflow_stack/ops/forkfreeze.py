"""A child that Airflow forks shares its parent's heap instead of copying it: at its first full
garbage collection, and each time it uses an inherited object.

The triggerer's supervisor forks its trigger runner (`WatchedSubprocess.start`, `os.fork`) once it
has imported Airflow. Two kinds of write then copy the pages the two processes share:
- CPython's collector writes to every object it examines, so the runner's first full collection
  copies nearly every page of the heap it inherited. Airflow freezes the heap before it forks in
  its Celery worker and its dag-processor (`gc.freeze`), not in the triggerer.
- CPython writes an object's reference count each time either process uses the object, and each
  such write copies the object's page, in whichever process writes it.

`install()` registers a fork hook in this process. Just before the first fork, every object the
process holds is made immortal (core.sharedheap: the counts of the modules, classes and
configuration both processes keep are never written again; `AIRFLOW_STACK_SHARED_HEAP=false`
leaves them mortal). Just before each fork the heap is frozen for the collector, and right after it
is unfrozen in the parent, so the parent collects as in Airflow. The child keeps what it inherited
frozen: it never examines, so never copies, those pages, and never collects them (they are the
parent's objects of the moment of the fork, mostly modules). Its own objects are collected as usual.

Installed in the triggerer (its `installs` in core.components, called by `python -m
airflow_stack.ops.logfiles triggerer airflow triggerer`, which runs Airflow's command line in this
process). The dag-processor is left alone: Airflow freezes its manager's heap for good before its
parsing loop. No Airflow internals.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping

from airflow_stack.core import sharedheap
from airflow_stack.core.errors import log

_installed = False
_forked = False


def _before_fork() -> None:
    global _forked
    if not _forked:
        _forked = True
        log(sharedheap.immortalize(before="the first fork"))
    gc.freeze()


def install(env: Mapping[str, str] | None = None) -> str:
    """Make the heap immortal before the first fork of this process and freeze it for the collector
    before each (installed once); returns what it did, for the component's log."""
    global _installed
    if not _installed:
        os.register_at_fork(before=_before_fork, after_in_parent=gc.unfreeze)
        _installed = True
    return (
        "forked processes: the heap is made immortal before the first fork and frozen for the garbage "
        "collector before each, so children share it"
    )
