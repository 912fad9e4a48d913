"""Bench-only (`bench/soak.py --trace-scheduler`): where the scheduler's memory grows.

`soak.py` mounts this module and a `.pth` file that imports it into the scheduler container's
site-packages. In the `airflow scheduler` process only, it starts tracemalloc (4 frames) and a
daemon thread that, after MEMTRACE_WARMUP seconds (300), takes a baseline snapshot, then every
MEMTRACE_EVERY seconds (600) appends to MEMTRACE_OUT (logs/memtrace.txt):

- the Python heap tracemalloc sees, and the process's anonymous resident memory (RssAnon), so
  that growth outside Python's allocator (C extensions, the allocator's fragmentation) shows as
  the gap between the two (RssAnon also holds the baseline snapshot);
- how many statements SQLAlchemy's compiled-statement cache of Airflow's engine holds (an LRU of
  `query_cache_size`, 500 by default, pruned back to 500 once it passes 750);
- the 15 source lines whose live allocations grew most since the baseline, and the 3 tracebacks.

Snapshots hold the GIL for a few seconds; the scheduler's loop times in a traced soak are not
comparable with an untraced one.
"""

from __future__ import annotations

import linecache
import os
import sys
import threading
import time
import tracemalloc


def _compiled_statements() -> str:
    try:
        from airflow import settings

        cache = settings.engine._compiled_cache
        return str(len(cache)) if cache is not None else "off"
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not stop the scheduler
        return repr(exc)


def _state() -> str:
    """The traced heap, tracemalloc's own overhead, the process's RssAnon (MiB) and the statements cached."""
    traced = tracemalloc.get_traced_memory()[0] / 2**20
    overhead = tracemalloc.get_tracemalloc_memory() / 2**20
    return (
        f"traced {traced:.1f} MiB, tracemalloc's own {overhead:.1f} MiB, RssAnon {_rss_anon_mib():.1f} MiB, "
        f"compiled statements cached {_compiled_statements()}"
    )


def _rss_anon_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _snapshot() -> tracemalloc.Snapshot:
    """A snapshot without this report's own allocations (tracemalloc's, and linecache's source lines)."""
    mine = [tracemalloc.Filter(False, module.__file__) for module in (tracemalloc, linecache)]
    return tracemalloc.take_snapshot().filter_traces(mine)


def _trace(out: str, warmup: float, every: float) -> None:
    started = time.monotonic()
    time.sleep(warmup)  # the sampling schedule, not a synchronisation
    baseline = _snapshot()
    with open(out, "a") as report:
        report.write(f"baseline at {(time.monotonic() - started) / 60:.1f} min: {_state()}\n")
    while True:
        time.sleep(every)
        snapshot = _snapshot()
        lines = snapshot.compare_to(baseline, "lineno")[:15]
        tracebacks = snapshot.compare_to(baseline, "traceback")[:3]
        with open(out, "a") as report:
            report.write(f"\n== {(time.monotonic() - started) / 60:.1f} min: {_state()}\n")
            report.writelines(f"  {stat}\n" for stat in lines)
            for stat in tracebacks:
                report.write(f"  -- {stat.size_diff / 2**20:+.2f} MiB, {stat.count_diff:+d} blocks\n")
                report.writelines(f"       {line}\n" for line in stat.traceback.format())
        del snapshot


def install() -> None:
    if os.path.basename(sys.argv[0]) != "airflow" or sys.argv[1:2] != ["scheduler"]:
        return
    tracemalloc.start(4)
    out = os.environ.get("MEMTRACE_OUT", "/opt/airflow/logs/memtrace.txt")
    warmup = float(os.environ.get("MEMTRACE_WARMUP", "300"))
    every = float(os.environ.get("MEMTRACE_EVERY", "600"))
    threading.Thread(target=_trace, args=(out, warmup, every), name="memtrace", daemon=True).start()


install()
