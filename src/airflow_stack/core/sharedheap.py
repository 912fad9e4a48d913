"""Keeps a forking process's heap shared with its children: just before it forks, every object
the process holds is made immortal (PEP 683), so that the children no longer write reference
counts into the pages they inherit. The Celery worker does it before its pool forks (for the pool
processes and the task processes they fork), the triggerer before it forks its trigger runner
(ops.forkfreeze).

CPython writes an object's reference count each time the object is used; in a forked process
each such write copies the page the object sits on. `gc.freeze` (taskwarmup) keeps the collector
off those pages, but the counts alone made each idle pool process copy about 12 MiB (7 MiB with
this), and each task process about 17 MiB, of what the worker's main process had imported. An
immortal object's count is never written (CPython 3.12+ skips it), which is what CPython already does for
interned strings, small integers and the built-in types.

What that costs: the objects alive now are never freed, in the process or any child. They are the
imported modules, classes, functions and configuration that the process keeps for its whole life
anyway; a transient object alive at this moment stays allocated (bounded: once, at start).

It relies on how CPython stores the count: the low 32 bits of `ob_refcnt` all set mark an object
immortal on 64-bit CPython 3.12 and 3.13 (Include/refcount.h). On any other interpreter (another
version, a free-threaded build, 32-bit) it does nothing and says so; a self-check on a fresh
object (its count must not move when it is referenced) disables it if the layout is not as
expected. Any error while listing the heap leaves it alone too. `AIRFLOW_STACK_SHARED_HEAP=false`
turns it off. Standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import struct
import sys
import sysconfig
import time
import types

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError

# Include/refcount.h, 64-bit, CPython 3.12 and 3.13: _Py_IMMORTAL_REFCNT = UINT_MAX.
_IMMORTAL = {(3, 12): 0xFFFFFFFF, (3, 13): 0xFFFFFFFF}


def _refcount_cell(obj: object) -> ctypes.c_ssize_t:
    # CPython's id() is the object's address; ob_refcnt is its first field (PyObject_HEAD).
    return ctypes.c_ssize_t.from_address(id(obj))


def supported() -> str | None:
    """None when this interpreter stores counts as expected; otherwise why not."""
    if sys.implementation.name != "cpython":
        return f"the interpreter is {sys.implementation.name}, not CPython"
    if sys.version_info[:2] not in _IMMORTAL:
        return (
            f"Python {sys.version_info[0]}.{sys.version_info[1]} is not one whose count layout this knows (3.12, 3.13)"
        )
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "this is a free-threaded build, whose counts are stored differently"
    if struct.calcsize("P") != 8:
        return "this is not a 64-bit build"
    # Self-check: an immortalised object's count must not move when it is referenced.
    probe = [object()]
    cell = _refcount_cell(probe)
    saved = cell.value
    cell.value = _IMMORTAL[sys.version_info[:2]]
    try:
        before = sys.getrefcount(probe)
        held = [probe, probe, probe]
        after = sys.getrefcount(probe)
        del held
    finally:
        cell.value = saved
    if before != after:
        return f"the self-check failed (the count moved from {before} to {after})"
    return None


# The fields a code object stores. Not co_varnames, co_cellvars or co_freevars: CPython 3.11+ builds
# those tuples on first access and keeps them, so listing them would add about 10 MiB of new objects.
_CODE_FIELDS = (
    "co_consts",
    "co_names",
    "co_filename",
    "co_name",
    "co_qualname",
    "co_linetable",
    "co_exceptiontable",
)


def _referents(obj: object) -> list[object]:
    """What `obj` refers to. Code objects are not tracked and list nothing to the collector, yet
    running them uses their constants (LOAD_CONST counts a reference each time)."""
    # type(), not isinstance(): a lazy proxy's __class__ may run code, or raise.
    if type(obj) is types.CodeType:
        return [getattr(obj, name) for name in _CODE_FIELDS]
    return gc.get_referents(obj)


def _objects() -> list[object]:
    """Every object the collector tracks, and every untracked object reachable from them (strings,
    bytes, numbers, tuples and dicts of those), each once."""
    found = gc.get_objects()
    seen = {id(o) for o in found}
    pending = list(found)
    while pending:
        reached = []
        for obj in pending:
            for referent in _referents(obj):
                if id(referent) not in seen:
                    seen.add(id(referent))
                    reached.append(referent)
        found.extend(reached)
        # Tracked objects were all listed at the start; only untracked ones lead further.
        pending = [o for o in reached if not gc.is_tracked(o)]
    return found


def _release_free_memory() -> None:
    """Give the listing's freed memory back to the system (glibc's `malloc_trim`) instead of leaving
    it resident, and so inherited by every child (about 10 MiB); elsewhere nothing."""
    with contextlib.suppress(AttributeError, OSError):  # not glibc: nothing to trim this way
        ctypes.CDLL(None).malloc_trim(0)


def immortalize(env: dict[str, str] | None = None, *, before: str = "the pool forks") -> str:
    """Make every object alive now immortal; a one-line summary for the log, which says it happens
    `before` (what forks next)."""
    try:
        if not settings.SHARED_HEAP.read(os.environ if env is None else env):
            return "shared heap: off (AIRFLOW_STACK_SHARED_HEAP=false)"
    except StackError as exc:
        return f"shared heap: off, a setting is invalid: {exc.problem} (fix: {exc.fix})"
    reason = supported()
    if reason:
        return f"shared heap: off, {reason}; forked processes copy the pages whose counts they write"
    value = _IMMORTAL[sys.version_info[:2]]
    started = time.monotonic()
    # A frozen heap (the worker's, frozen when Celery imported its modules) is not listed.
    gc.unfreeze()
    gc.collect()  # garbage now would otherwise be kept for good
    try:
        objects = _objects()
    except Exception as exc:  # noqa: BLE001 - nothing is written yet; the component must start regardless
        return f"shared heap: off, listing the heap failed ({exc!r}); forked processes copy the pages they count in"
    count = 0
    for obj in objects:
        cell = _refcount_cell(obj)
        if cell.value & 0xFFFFFFFF != 0xFFFFFFFF:  # already immortal: leave it alone
            cell.value = value
            count += 1
    del objects
    _release_free_memory()
    return f"shared heap: {count} objects made immortal before {before} ({time.monotonic() - started:.1f} s)"
