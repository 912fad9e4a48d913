"""core.sharedheap and ops.forkfreeze in the image's own Python: after `immortalize()` (what the
worker runs before its pool forks, and the triggerer before it forks its trigger runner), a forked
child that uses every inherited object copies a small fraction of the pages a child copies without
it; the objects stay correct to use, change and drop in the parent and the child; making Airflow's
heap immortal adds no memory of its own; `AIRFLOW_STACK_SHARED_HEAP=false` turns it off; a pool
process sets its parent-death signal without building a C parser of its own once the worker has
warmed it (taskwarmup). Runs the
image (`make build`), as the host's Python is not the image's."""

from __future__ import annotations

import json

from .conftest import docker

AIRFLOW_IMAGE = "airflow-stack:latest"

# Defined for every script `run` runs: what this process holds of its own (a forked child: what it
# has copied of its parent's pages so far).
PRIVATE_DIRTY = r"""
def private_dirty_mib():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) / 1024
"""

SCRIPT = r"""
import gc, json, os, sys
from airflow_stack.core import sharedheap

def label(i):
    return ("item", i)  # a constant tuple, used by running code

# About 60 MiB of dicts, tuples, strings and floats, as imported modules and configuration are.
heap = [{"name": "n%d" % i, "values": (i * 1.5, "s%d" % i), "kind": label(i)} for i in range(200_000)]
if sys.argv[1] == "fork-hook":  # as the triggerer: the hook runs at the fork
    from airflow_stack.ops import forkfreeze
    message = forkfreeze.install()
else:  # as the worker: before the pool forks
    message = sharedheap.immortalize()
    gc.freeze()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    before = private_dirty_mib()
    total = 0
    for entry in heap:  # every inherited object referenced and let go
        name, values, kind = entry["name"], entry["values"], entry["kind"]
        total += len(name) + len(values[1]) + int(values[0]) + len(kind)
    copied = private_dirty_mib() - before
    heap[0]["name"] = "changed"  # still an ordinary, mutable dict
    ok = heap[0]["name"] == "changed" and total > 0
    os.write(write, json.dumps({"copied_mib": copied, "child_ok": ok}).encode())
    os._exit(0)
os.waitpid(pid, 0)
child = json.loads(os.read(read, 4096))
# The parent changes, drops and collects as before.
heap[1]["values"] = None
del heap[2:]
gc.unfreeze()
gc.collect()
fresh = [str(i) for i in range(1000)]
print(json.dumps({**child, "message": message, "parent_ok": heap[1]["values"] is None and len(fresh) == 1000}))
"""


def run(*env: str, mode: str = "direct", script: str = SCRIPT) -> dict:
    args = ["run", "--rm", "--network", "none", "--entrypoint", "python"]
    for variable in env:
        args += ["-e", variable]
    done = docker(*args, AIRFLOW_IMAGE, "-c", PRIVATE_DIRTY + script, mode, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


def test_a_child_using_the_inherited_heap_copies_a_fraction_of_it():
    plain = run("AIRFLOW_STACK_SHARED_HEAP=false")
    shared = run()
    assert plain["message"] == "shared heap: off (AIRFLOW_STACK_SHARED_HEAP=false)"
    assert shared["message"].startswith("shared heap: ") and "objects made immortal" in shared["message"], shared
    # Without it, counting references copies most of the pages the child touches.
    assert plain["copied_mib"] > 20, plain
    assert shared["copied_mib"] < plain["copied_mib"] / 4, (plain, shared)
    for result in (plain, shared):
        assert result["child_ok"] and result["parent_ok"], result


def test_the_triggerers_fork_hook_shares_the_heap_the_same_way():
    plain = run("AIRFLOW_STACK_SHARED_HEAP=false", mode="fork-hook")
    shared = run(mode="fork-hook")
    assert "shared heap: off (AIRFLOW_STACK_SHARED_HEAP=false)" in plain["stderr"], plain["stderr"]
    assert "objects made immortal before the first fork" in shared["stderr"], shared["stderr"]
    assert plain["copied_mib"] > 20, plain
    assert shared["copied_mib"] < plain["copied_mib"] / 4, (plain, shared)
    for result in (plain, shared):
        assert result["child_ok"] and result["parent_ok"], result


# What the triggerer has imported when it forks its runner; the process's own memory around it.
AIRFLOW_HEAP = r"""
import gc, json
import airflow.jobs.triggerer_job_runner
from airflow_stack.core import sharedheap

def anonymous_mib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

gc.collect()
before = anonymous_mib()
message = sharedheap.immortalize(before="the test's fork")
print(json.dumps({"message": message, "grown_mib": anonymous_mib() - before}))
"""


def test_making_airflows_heap_immortal_adds_no_memory_of_its_own():
    # Listing half a million objects needs transient memory, and reading a code object's
    # co_varnames builds a tuple it keeps: either, left resident, every child would inherit.
    result = run(script=AIRFLOW_HEAP)
    assert "objects made immortal before the test's fork" in result["message"], result
    assert result["grown_mib"] < 4, result


# A Celery pool process's first act: set its parent-death signal (celery.concurrency.prefork).
PARENT_DEATH = r"""
import json, os, sys
import celery.platforms
from billiard.util import get_pdeathsig
from airflow_stack.worker import taskwarmup

warmed = taskwarmup.warm_parent_death_signal() if sys.argv[1] == "warm" else None
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    before = private_dirty_mib()
    celery.platforms.set_pdeathsig("SIGKILL")
    copied = private_dirty_mib() - before
    os.write(write, json.dumps({"copied_mib": copied, "signal": get_pdeathsig(), "warmed": warmed}).encode())
    os._exit(0)
os.waitpid(pid, 0)
print(os.read(read, 4096).decode())
"""


def test_a_pool_process_sets_its_parent_death_signal_without_its_own_c_parser_once_warmed():
    cold = run(mode="cold", script=PARENT_DEATH)
    warm = run(mode="warm", script=PARENT_DEATH)
    assert warm["warmed"] is True, warm
    # The signal is set either way: a pool process still dies with the worker's main process.
    assert cold["signal"] == warm["signal"] == 9, (cold, warm)
    # Without the warm-up each pool process builds pycparser's parser (several MiB) for one line.
    assert cold["copied_mib"] > 4, cold
    assert warm["copied_mib"] < cold["copied_mib"] / 3, (cold, warm)
