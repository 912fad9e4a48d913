"""Benchmark (not a test): hours of steady, mixed load on the local stack as shipped.

It starts the real docker-compose.yml from empty volumes under its own project (UI on
127.0.0.1:28080) with 20 DAGs on schedules of 2 to 6 minutes. Each run has three 1-second tasks,
eight mapped 2-second tasks, and, by turns, a 2-minute task, a deferrable sensor of 60 s, a
deferrable sensor of 30 s, or nothing more. For `--minutes` (60) it samples every service's
memory every 30 s (Docker's stats API). The scheduler sends its loop durations over statsd to a
listener on the stack's network. At the end it reports:

- memory per service over time (chart), and its growth: the median of the last 10 minutes
  against the median of minutes 10 to 20, and the least-squares slope over the second half
  (MiB per hour);
- task instances that failed (they should be 0), and how many succeeded;
- the scheduler's loop duration, p50, p95, p99 and the maximum;
- queue latency (queued -> started), p50, p95 and p99.

    uv run --project tools/bench --frozen python bench/soak.py [--minutes 60] [--trace-scheduler]
        [--option NAME=VALUE ...]

Prints the figures and writes bench/results/soak.json, soak.md and soak.png. With
`--trace-scheduler`, the scheduler runs under tracemalloc (`bench/memtrace.py`) and its report,
the Python heap against the process's memory and the lines that grew, goes to
bench/results/soak-memtrace.txt; its loop times are then not comparable with an untraced run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from stock_vs_ours import RESULTS, Stack, percentile, seconds

SAMPLE_EVERY = 30
STATSD = "soak-statsd"
EXTRAS = [
    "    slow = long()\n    done >> slow\n",
    '    WaitSensor(task_id="sensor_60s", time_to_wait=timedelta(seconds=60), deferrable=True) >> done\n',
    '    WaitSensor(task_id="sensor_30s", time_to_wait=timedelta(seconds=30), deferrable=True) >> done\n',
    "",
]
# Prints every scheduler loop duration it receives, with the time, on its own output.
LISTENER = (
    "import socket, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('0.0.0.0', 8125))\n"
    "while True:\n"
    "    for line in s.recv(65535).decode(errors='replace').splitlines():\n"
    "        if 'scheduler_loop_duration' in line:\n"
    "            print(f'{time.time():.0f} {line}', flush=True)\n"
)


def soak_dag(index: int) -> str:
    return (
        f'"""Soak DAG {index} (bench/soak.py)."""\n'
        "import time\nfrom datetime import timedelta\n\nimport pendulum\n"
        "from airflow.providers.standard.sensors.time_delta import WaitSensor\n"
        "from airflow.sdk import dag, task\n\n\n"
        f'@dag(dag_id="soak_{index:02d}", schedule=timedelta(minutes={2 + index % 5}),\n'
        '     start_date=pendulum.datetime(2025, 1, 1, tz="UTC"), catchup=False, max_active_runs=1,\n'
        "     is_paused_upon_creation=False)\n"
        "def soak():\n"
        "    @task\n    def short(n: int) -> int:\n        time.sleep(1)\n        return n\n\n"
        "    @task\n    def fan() -> list[int]:\n        return list(range(8))\n\n"
        "    @task\n    def mapped(x: int) -> int:\n        time.sleep(2)\n        return x\n\n"
        "    @task\n    def long() -> None:\n        time.sleep(120)\n\n"
        "    done = [short(n) for n in range(3)]\n"
        "    done[-1] >> mapped.expand(x=fan())\n"
        "    done = done[0]\n"
        f"{EXTRAS[index % len(EXTRAS)]}\n\n"
        "soak()\n"
    )


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per hour."""
    if len(points) < 3:
        return None
    try:
        fit = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
    except statistics.StatisticsError:  # every sample at the same time
        return None
    return round(fit.slope * 3600, 1)


def growth(samples: list[dict], minutes: float) -> dict[str, dict]:
    """Per service: the median of minutes 10-20 and of the last 10 minutes, and the second half's slope."""
    services = sorted({s for sample in samples for s in sample["memory_mib"]})
    found = {}
    for service in services:
        points = [(x["t"], x["memory_mib"][service]) for x in samples if service in x["memory_mib"]]
        early = [m for t, m in points if 600 <= t < 1200] or [m for _, m in points[: len(points) // 3]]
        late = [m for t, m in points if t >= minutes * 60 - 600] or [m for _, m in points[-len(points) // 3 :]]
        found[service] = {
            "early_median_mib": round(statistics.median(early), 1) if early else None,
            "late_median_mib": round(statistics.median(late), 1) if late else None,
            "second_half_slope_mib_per_h": slope_per_hour([p for p in points if p[0] >= minutes * 30]),
        }
    return found


def task_instances(api, since: str) -> list[dict]:
    found, offset = [], 0
    while True:
        params = {"limit": 100, "offset": offset, "start_date_gte": since}
        page = api.get("/dags/~/dagRuns/~/taskInstances", params=params).json()
        found += page["task_instances"]
        offset += 100
        if offset >= page["total_entries"]:
            return found


def loop_durations(output: str) -> list[float]:
    """Milliseconds from the listener's lines: `<time> airflow.scheduler.scheduler_loop_duration:12.3|ms`."""
    values = []
    for line in output.splitlines():
        try:
            values.append(float(line.split(":", 1)[1].split("|", 1)[0]))
        except (IndexError, ValueError):
            continue
    return values


def chart(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for service in sorted({s for sample in samples for s in sample["memory_mib"]}):
        points = [(x["t"] / 60, x["memory_mib"][service]) for x in samples if service in x["memory_mib"]]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=service)
    ax.set_xlabel("minutes")
    ax.set_ylabel("memory (MiB)")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def memtrace_override(workdir: Path, image: str) -> Path:
    """A compose file that loads bench/memtrace.py into the scheduler through a .pth file."""
    site = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "python", image,
         "-c", "import site; print(site.getsitepackages()[0])"],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    pth = workdir / "memtrace.pth"
    pth.write_text("import airflow_stack_memtrace\n")
    override = workdir / "memtrace.yml"
    override.write_text(
        "services:\n  scheduler:\n    volumes:\n"
        f"      - {Path(__file__).parent / 'memtrace.py'}:{site}/airflow_stack_memtrace.py:ro\n"
        f"      - {pth}:{site}/airflow_stack_memtrace.pth:ro\n"
    )
    return override


def soak(minutes: float, trace_scheduler: bool = False, extra_options: tuple[str, ...] = ()) -> dict:
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        options = Path(workdir) / "airflow.env"
        options.write_text(
            f"AIRFLOW__METRICS__STATSD_ON=True\nAIRFLOW__METRICS__STATSD_HOST={STATSD}\nAIRFLOW__METRICS__STATSD_PORT=8125\n"
            + "".join(f"{option}\n" for option in extra_options)
        )
        files = {f"soak_{i:02d}.py": soak_dag(i) for i in range(20)}
        image = "airflow-stack:latest"
        overrides = [memtrace_override(Path(workdir), image)] if trace_scheduler else []
        env = {"AIRFLOW_ENV_FILE": str(options)}
        stack = Stack("ours", Path(workdir), dag_files=files, env=env, name="soak", overrides=overrides)
        listener = f"{stack.project}-{STATSD}"
        try:
            stack.up()
            image = stack.env.get("AIRFLOW_IMAGE", image)
            subprocess.run(
                ["docker", "run", "-d", "--name", listener, "--network", f"{stack.project}_default",
                 "--network-alias", STATSD, "--entrypoint", "python", image, "-u", "-c", LISTENER],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            stack.run("restart", "scheduler")  # it resolves the statsd host once, at start
            started, since = time.monotonic(), datetime.now(UTC).isoformat()
            samples = []
            while (elapsed := time.monotonic() - started) < minutes * 60:
                samples.append({"t": round(elapsed), "memory_mib": stack.memory()})
                total = sum(samples[-1]["memory_mib"].values())
                print(f"[{elapsed / 60:5.1f} min] stack memory {total:.0f} MiB", file=sys.stderr)
                time.sleep(max(0.0, SAMPLE_EVERY - (time.monotonic() - started - elapsed)))  # the sampling period
            with stack.api() as api:
                tis = task_instances(api, since)
            logs = subprocess.run(["docker", "logs", listener], capture_output=True, text=True, timeout=120).stdout
            trace = Path(workdir) / "logs" / "memtrace.txt"
            if trace_scheduler:
                RESULTS.mkdir(parents=True, exist_ok=True)
                (RESULTS / "soak-memtrace.txt").write_text(trace.read_text() if trace.exists() else "no report\n")
        finally:
            subprocess.run(["docker", "rm", "-f", listener], capture_output=True, timeout=120)
            stack.run("down", "-v", "--remove-orphans")
    loops = loop_durations(logs)
    latency = [seconds(t.get("queued_when"), t.get("start_date")) for t in tis if t.get("queued_when")]
    return {
        "minutes": minutes,
        "options": list(extra_options),
        "samples": samples,
        "memory": growth(samples, minutes),
        "task_instances": len(tis),
        "succeeded": sum(t["state"] == "success" for t in tis),
        "failed": sum(t["state"] in ("failed", "upstream_failed") for t in tis),
        "failed_tasks": sorted({f"{t['dag_id']}.{t['task_id']}" for t in tis if t["state"] == "failed"}),
        "scheduler_loop_ms": {f"p{p}": percentile(loops, p) for p in (50, 95, 99)}
        | {"max": max(loops, default=None), "loops": len(loops)},
        "queued_to_start_s": {f"p{p}": percentile(latency, p) for p in (50, 95, 99)},
    }


def markdown(result: dict) -> str:
    lines = [
        f"Soak of {result['minutes']:g} minutes: {result['task_instances']} task instances started, "
        f"{result['succeeded']} succeeded, {result['failed']} failed."
        + (f" Options: {', '.join(f'`{o}`' for o in result['options'])}." if result.get("options") else ""),
        "",
        "| service | MiB, minutes 10-20 (median) | MiB, last 10 minutes (median) | slope, second half (MiB/h) |",
        "|---|---|---|---|",
    ]
    for service, m in result["memory"].items():
        lines.append(
            f"| {service} | {m['early_median_mib']} | {m['late_median_mib']} | {m['second_half_slope_mib_per_h']} |"
        )
    loop, latency = result["scheduler_loop_ms"], result["queued_to_start_s"]
    lines += [
        "",
        f"Scheduler loop (ms, {loop['loops']} loops): p50 {loop['p50']}, p95 {loop['p95']}, p99 {loop['p99']}, "
        f"max {loop['max']}.",
        f"Queued to started (s): p50 {latency['p50']}, p95 {latency['p95']}, p99 {latency['p99']}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60, help="how long the load runs (default 60)")
    parser.add_argument(
        "--trace-scheduler", action="store_true", help="trace the scheduler's heap (bench/results/soak-memtrace.txt)"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an Airflow option for every Airflow container (config/airflow.env's form); repeatable",
    )
    args = parser.parse_args()
    if bad := [o for o in args.option if "=" not in o]:
        parser.error(f"--option takes NAME=VALUE, as in config/airflow.env; got {bad[0]!r}")
    result = soak(args.minutes, args.trace_scheduler, tuple(args.option))
    RESULTS.mkdir(parents=True, exist_ok=True)
    measured = {"measured_at": datetime.now().isoformat(timespec="seconds"), **result}
    (RESULTS / "soak.json").write_text(json.dumps(measured, indent=2) + "\n")
    (RESULTS / "soak.md").write_text(markdown(result))
    chart(result["samples"], RESULTS / "soak.png")
    print(markdown(result))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
