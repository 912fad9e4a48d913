"""ops.forkfreeze: a forked child's full collection leaves the inherited heap shared, and the
parent collects as before. Each case runs in a fresh interpreter (fork hooks cannot be removed)."""

from __future__ import annotations

import json
import subprocess
import sys

CHILD_AFTER_FORK = r"""
import gc, json, os, sys
sys.path[:0] = [p for p in sys.argv[2:]]
if sys.argv[1] == "install":
    from airflow_stack.ops import forkfreeze
    print(forkfreeze.install(), file=sys.stderr)
    forkfreeze.install()  # twice: one hook
heap = [[i, [i]] for i in range(600_000)]  # lists stay tracked by the collector: about 100 MiB
def private_dirty_mib():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) / 1024
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    frozen = gc.get_freeze_count()
    before = private_dirty_mib()
    gc.collect()
    os.write(write, json.dumps({"frozen": frozen, "copied_mib": private_dirty_mib() - before}).encode())
    os._exit(0)
os.waitpid(pid, 0)
child = json.loads(os.read(read, 4096))
print(json.dumps({**child, "parent_frozen": gc.get_freeze_count()}))
"""


def run(mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD_AFTER_FORK, mode, *sys.path], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_child_keeps_the_inherited_heap_shared_through_a_full_collection():
    plain, frozen = run("plain"), run("install")
    # Without the hook the child's collection writes to (so copies) the pages of the heap it inherited.
    assert plain["frozen"] == 0
    assert plain["copied_mib"] > 40, plain
    # With it, the child's inherited objects are frozen and its collection copies a small fraction.
    assert frozen["frozen"] > 1_200_000, frozen
    assert frozen["copied_mib"] < plain["copied_mib"] / 4, (plain, frozen)
    # The parent's own objects are unfrozen again right after the fork: it collects them as before.
    assert frozen["parent_frozen"] == 0
