"""Benchmark (not a test): does Flower's memory level off once it holds `max_tasks` tasks?

An hour's soak cannot answer it: at the soak's pace Flower reaches its bound of 5,000 tasks after
about an hour. This drives the real Flower of docker-compose.yml (the image's `celery flower`, with
`AIRFLOW_STACK_FLOWER_MAX_TASKS`) far past its bound in minutes: a publisher in a one-off container
of the same image sends, through the stack's Redis, the events a Celery worker sends for an
Airflow task (`task-received` with a 1 KiB argument repr like Airflow's workload, `task-started`,
`task-succeeded`, and the worker's heartbeats), in batches of `--batch` tasks, each task with its
own id and argument. After each batch it waits until Flower has counted every event (its
Prometheus `flower_events_total`), then the host reads Flower's memory (Docker's stats API, and the
Flower process's private memory).

Celery's event state keeps the newest `max_tasks` tasks, and a time-ordered list of their events
bounded at 4 x `max_tasks` entries (`celery/events/state.py`, `heap_multiplier`): with three events
per task, that list is full only after about 4/3 x `max_tasks` tasks. The summary compares the
samples from 3 x `max_tasks` tasks on, when both are full and the allocator has settled. At the
end it counts the tasks Flower holds through its API.

    uv run --project tools/bench --frozen python bench/flower_bound.py [--max-tasks 5000] [--tasks 40000]

Prints memory against tasks sent and writes bench/results/flower-bound.json, .md and .png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from stock_vs_ours import RESULTS, Stack

FLOWER = "http://127.0.0.1:25555"
EVENTS_PER_TASK = 3  # received, started, succeeded; worker heartbeats are counted apart

# Runs in a one-off container of the image, on the stack's network. For each line "BATCH n" on
# stdin it sends n tasks' events, waits until Flower has counted them all, and prints "DONE".
PUBLISHER = r"""
import json, os, sys, time, uuid
import httpx
from celery import Celery
from celery.utils.saferepr import saferepr

user, password = os.environ["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"].split(":", 1)
app = Celery(broker=os.environ["AIRFLOW__CELERY__BROKER_URL"])
host = "celery@bench-worker"
flower = httpx.Client(base_url="http://flower:5555", auth=(user, password), timeout=30)


def counted():
    total = 0.0
    for line in flower.get("/metrics").text.splitlines():
        if line.startswith("flower_events_total{") and 'type="task-' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def workload(task_id):
    # The shape and size of Airflow's ExecuteTask workload as Celery sends it.
    return json.dumps({
        "token": "eyJ" + uuid.uuid4().hex * 12,
        "ti": {"id": task_id, "task_id": f"t{task_id[:4]}", "dag_id": "bench_fanout_100",
               "run_id": "manual__2026-12-01T00:00:00+00:00", "try_number": 1, "map_index": -1,
               "pool_slots": 1, "queue": "default", "priority_weight": 1, "executor_config": None,
               "parent_context_carrier": {}, "context_carrier": {}},
        "dag_rel_path": "bench_fanout_100.py",
        "bundle_info": {"name": "dags-folder", "version": None},
        "log_path": f"dag_id=bench_fanout_100/run_id=manual/task_id=t{task_id[:4]}/attempt=1.log",
        "type": "ExecuteTask",
    })


sent = 0
with app.connection_for_write() as conn:
    events = app.events.Dispatcher(conn, hostname=host, enabled=True)
    events.send("worker-online", freq=2.0, sw_ident="py-celery", sw_ver="5.6.3", sw_sys="Linux")
    for line in sys.stdin:
        n = int(line.split()[1])
        for _ in range(n):
            task_id = str(uuid.uuid4())
            events.send("task-received", uuid=task_id, name="execute_workload",
                        args=saferepr((workload(task_id),), 1024), kwargs="{}", root_id=task_id,
                        parent_id=None, retries=0, eta=None, expires=None)
            events.send("task-started", uuid=task_id)
            events.send("task-succeeded", uuid=task_id, result="None", runtime=0.4)
            sent += 3
        events.send("worker-heartbeat", freq=2.0, active=0, processed=sent // 3, loadavg=[0.1, 0.1, 0.1])
        deadline = time.monotonic() + 300
        while counted() < sent:
            if time.monotonic() > deadline:
                sys.exit(f"Flower counted {counted():.0f} of {sent} events after 300 s")
            time.sleep(0.2)
        print("DONE", flush=True)
"""


def flower_memory(stack: Stack, container: str) -> tuple[float, float]:
    """(container MiB, the Flower process's private MiB)."""
    total = stack.docker.stats(container)[1]
    private = sum(p for args, _, p in stack.docker.processes(container) if "flower" in args)
    return round(total, 1), round(private, 1)


def wait_healthy(deadline_s: float = 180) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{FLOWER}/healthcheck", timeout=5).text == "OK":
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"Flower did not answer {FLOWER}/healthcheck within {deadline_s:.0f} s")


def measure(max_tasks: int, tasks: int, batch: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="flower-bound-") as tmp:
        # Set as a user would: in the Airflow containers' env file (config/airflow.env).
        options = Path(tmp) / "airflow.env"
        options.write_text(f"AIRFLOW_STACK_FLOWER_MAX_TASKS={max_tasks}\n")
        stack = Stack("ours", Path(tmp), dag_files={}, name="flower", env={"AIRFLOW_ENV_FILE": str(options)})
        stack.run("down", "-v", "--remove-orphans")
        try:
            stack.run("up", "-d", "flower")
            wait_healthy()
            container = stack.containers()["flower"]
            mib, private = flower_memory(stack, container)
            samples = [{"tasks": 0, "seconds": 0.0, "mib": mib, "private_mib": private}]
            publisher = subprocess.Popen(
                [*stack.compose, "run", "--rm", "--no-deps", "-T", "--entrypoint", "python", "flower", "-c", PUBLISHER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            started, sent = time.monotonic(), 0
            try:
                while sent < tasks:
                    n = min(batch, tasks - sent)
                    publisher.stdin.write(f"BATCH {n}\n")
                    publisher.stdin.flush()
                    if publisher.stdout.readline().strip() != "DONE":
                        raise SystemExit(f"the publisher stopped: {publisher.wait(timeout=30)}")
                    sent += n
                    mib, private = flower_memory(stack, container)
                    elapsed = round(time.monotonic() - started, 1)
                    samples.append({"tasks": sent, "seconds": elapsed, "mib": mib, "private_mib": private})
                    print(f"{sent:>7} tasks  {mib:7.1f} MiB  (Flower process private {private:.1f} MiB)", flush=True)
            finally:
                publisher.stdin.close()
                publisher.wait(timeout=60)
            # After the last sample: serialising every task it holds costs Flower memory.
            auth = (stack.env["FLOWER_USERNAME"], stack.env["FLOWER_PASSWORD"])
            kept = len(httpx.get(f"{FLOWER}/api/tasks", auth=auth, params={"limit": tasks}, timeout=120).json())
        except BaseException:
            print(stack.run("logs", "--tail", "50", "flower"), file=sys.stderr)
            raise
        finally:
            stack.run("down", "-v", "--remove-orphans")
    return {"max_tasks": max_tasks, "tasks": tasks, "batch": batch, "tasks_kept": kept, "samples": samples}


def summarise(result: dict) -> dict:
    """Growth while filling against after both bounds (tasks, and the event list at 4x) are full."""
    samples, bound = result["samples"], result["max_tasks"]
    # Past 3x the bound: the event list is full, and the allocator has settled.
    full = [s for s in samples if s["tasks"] >= bound * 3]
    filling = [s for s in samples if s["tasks"] <= bound]
    summary = {"start_mib": samples[0]["mib"], "at_bound_mib": filling[-1]["mib"] if filling else None}
    if len(full) >= 2:
        first, last = full[0], full[-1]
        per_10k = (last["mib"] - first["mib"]) / (last["tasks"] - first["tasks"]) * 10_000
        summary |= {
            "after_bounds_from_tasks": first["tasks"],
            "after_bounds_first_mib": first["mib"],
            "after_bounds_last_mib": last["mib"],
            "after_bounds_median_mib": statistics.median(s["mib"] for s in full),
            "after_bounds_max_mib": max(s["mib"] for s in full),
            "after_bounds_mib_per_10k_tasks": round(per_10k, 2),
        }
    return summary


def report(result: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "flower-bound.json").write_text(json.dumps(result, indent=2) + "\n")
    s = result["summary"]
    lines = [
        f"# Flower past its bound: max_tasks {result['max_tasks']:,}, {result['tasks']:,} tasks sent",
        "",
        f"- start: {s['start_mib']} MiB; at {result['max_tasks']:,} tasks: {s['at_bound_mib']} MiB",
        f"- tasks Flower held at the end (its API): {result['tasks_kept']:,}",
    ]
    if "after_bounds_first_mib" in s:
        lines.append(
            f"- from {s['after_bounds_from_tasks']:,} tasks to the end: {s['after_bounds_first_mib']} -> "
            f"{s['after_bounds_last_mib']} MiB (highest {s['after_bounds_max_mib']}; "
            f"{s['after_bounds_mib_per_10k_tasks']:+} MiB per 10,000 tasks)"
        )
    lines += ["", "| tasks sent | MiB | Flower process private MiB |", "|---|---|---|"]
    lines += [f"| {x['tasks']:,} | {x['mib']} | {x['private_mib']} |" for x in result["samples"]]
    (RESULTS / "flower-bound.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([x["tasks"] for x in result["samples"]], [x["mib"] for x in result["samples"]], label="container")
    tasks = [x["tasks"] for x in result["samples"]]
    ax.plot(tasks, [x["private_mib"] for x in result["samples"]], label="Flower process, private")
    ax.axvline(result["max_tasks"], linestyle="--", color="grey", label="max_tasks")
    ax.axvline(result["max_tasks"] * 4 / EVENTS_PER_TASK, linestyle=":", color="grey", label="event list full")
    ax.set_xlabel("tasks sent")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "flower-bound.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-tasks", type=int, default=5000, help="AIRFLOW_STACK_FLOWER_MAX_TASKS (the stack's default)"
    )
    parser.add_argument("--tasks", type=int, default=40_000, help="tasks to send in all")
    parser.add_argument("--batch", type=int, default=1000, help="tasks per batch, one memory sample after each")
    args = parser.parse_args()
    result = measure(args.max_tasks, args.tasks, args.batch)
    result["summary"] = summarise(result)
    print(json.dumps(result["summary"], indent=2))
    report(result)


if __name__ == "__main__":
    main()
