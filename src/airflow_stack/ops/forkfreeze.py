"""A child that Airflow forks shares its parent's heap instead of copying it at its first full
garbage collection.

The triggerer's supervisor forks its trigger runner (`WatchedSubprocess.start`, `os.fork`) once it
has imported Airflow. CPython's collector writes to every object it examines, so the runner's
first full collection copies nearly every page of the heap it inherited: the two processes then
hold their own copies of the same modules. Airflow freezes the heap before it forks in its Celery
worker and its dag-processor (`gc.freeze`), not in the triggerer.

`install()` registers a fork hook in this process: just before each fork the heap is frozen for the
collector, and right after it is unfrozen in the parent, so the parent collects as in Airflow. The
child keeps what it inherited frozen: it never examines, so never copies, those pages, and never
collects them (they are the parent's objects of the moment of the fork, mostly modules). Its own
objects are collected as usual.

Used by the triggerer (`python -m airflow_stack.ops.logfiles triggerer airflow triggerer`, which
runs Airflow's command line in this process). The dag-processor is left alone: Airflow freezes its
manager's heap for good before its parsing loop. Standard library only; no Airflow internals.
"""

from __future__ import annotations

import gc
import os

# The components whose in-process launcher installs the hook.
COMPONENTS = frozenset({"triggerer"})

_installed = False


def install() -> str:
    """Freeze the heap for the collector before each fork of this process (once); returns what it
    did, for the component's log."""
    global _installed
    if not _installed:
        os.register_at_fork(before=gc.freeze, after_in_parent=gc.unfreeze)
        _installed = True
    return "forked processes: the heap is frozen for the garbage collector before each fork, so children share it"
