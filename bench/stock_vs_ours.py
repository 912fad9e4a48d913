"""Benchmark (not a test): the stack with stock settings against the stack with ours, same image.

For each profile it starts the real docker-compose.yml from empty volumes under its own project
(UI on 127.0.0.1:28080) and measures:

- the time from `docker compose up -d` to every service healthy;
- idle memory per service (30 s after healthy), and each process's share (PSS);
- fan-out DAGs of 100 and 1,000 independent no-op tasks (the 100-task one once after start-up,
  then 3 times warm, reported as the median run): trigger to success, tasks/s, scheduled->queued
  and queued->start p50/p95, CPU-seconds per task (every container's CPU over the run, also per
  service), peak memory per service;
- 50 concurrent runs of a 3-task DAG: time to all done, failed task instances (must be 0).

`stock` is the official quick start's compose settings: its healthchecks (`airflow jobs check`,
`celery inspect ping`, every 30 s, start period 30 s) and Airflow's defaults for everything
`ours` changes (bench/stock-settings.yml). `ours` is docker-compose.yml as shipped.

    uv run --project tools/bench --frozen python bench/stock_vs_ours.py [--profiles stock,ours] [--quick]

Prints a table and the ratios, writes bench/results/stock-vs-ours.json, .md (the table) and .png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from docker_stats import Docker  # noqa: E402

from airflow_stack.host import envfile, stackwait  # noqa: E402

UI_PORT = 28080
RESULTS = ROOT / "bench" / "results"
PROFILES = {"stock": [ROOT / "bench" / "stock-settings.yml"], "ours": []}
RUN_TIMEOUT = 1800
WARM_RUNS = 3


def fanout_dag(dag_id: str, tasks: int) -> str:
    return (
        "import pendulum\nfrom airflow.sdk import dag, task\n\n"
        f"@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz='UTC'), catchup=False)\n"
        f"def {dag_id}():\n"
        "    @task\n    def noop():\n        return None\n"
        f"    for i in range({tasks}):\n        noop.override(task_id=f't{{i}}')()\n\n"
        f"{dag_id}()\n"
    )


DAGS = {"bench_fanout_100": 100, "bench_fanout_1000": 1000, "bench_small": 3}


class Stack:
    """The real compose file with a profile's settings (PROFILES) under the project
    `airflow-bench-<name>` (name: the profile's, by default), with `dag_files` (file name ->
    source; default: the fan-out DAGs), `env` added to its fresh .env and `overrides` (compose
    files) after the profile's."""

    def __init__(
        self,
        profile: str,
        workdir: Path,
        dag_files: dict[str, str] | None = None,
        env: dict | None = None,
        name: str | None = None,
        overrides: list[Path] | None = None,
    ):
        self.profile = profile
        self.project = f"airflow-bench-{name or profile}"
        self.env_file = workdir / ".env"
        files = [ROOT / "docker-compose.yml", *PROFILES[profile], *(overrides or [])]
        self.compose = [
            "docker",
            "compose",
            "--project-directory",
            str(ROOT),
            *(a for f in files for a in ("-f", str(f))),
            "--env-file",
            str(self.env_file),
            "-p",
            self.project,
        ]
        uid = envfile.container_uid()
        envfile.write_env_file(self.env_file, uid)
        dags, logs = workdir / "dags", workdir / "logs"
        dags.mkdir(mode=0o755)
        if dag_files is None:
            dag_files = {f"{dag_id}.py": fanout_dag(dag_id, tasks) for dag_id, tasks in DAGS.items()}
        for name, source in dag_files.items():
            (dags / name).write_text(source)
        envfile.prepare_dir(logs, uid)
        for key, value in {
            "AIRFLOW_UI_PORT": str(UI_PORT),
            "FLOWER_PORT": "25555",
            "MONITOR_PORT": "29108",
            "AIRFLOW_LOGS_DIR": str(logs),
            "AIRFLOW_DAGS_DIR": str(dags),
            **(env or {}),
        }.items():
            envfile.set_env_value(self.env_file, key, value)
        self.env = envfile.read_env_file(self.env_file)
        self.docker = Docker()

    def run(self, *args: str) -> str:
        return subprocess.run([*self.compose, *args], check=True, capture_output=True, text=True, timeout=900).stdout

    def containers(self) -> dict[str, str]:
        found = {}
        for line in self.run("ps", "--format", "{{.Service}} {{.ID}}").splitlines():
            service, container = line.split()
            found[service] = container
        return found

    def up(self) -> float:
        self.run("down", "-v", "--remove-orphans")
        started = time.monotonic()
        self.run("up", "-d", "--remove-orphans")
        if not stackwait.wait(self.compose, 600, set(stackwait.ONE_SHOT_SERVICES), out=sys.stderr):
            raise SystemExit(f"{self.profile}: the stack did not become healthy within 600 s")
        return time.monotonic() - started

    def memory(self) -> dict[str, float]:
        return {service: round(self.docker.stats(c)[1], 1) for service, c in self.containers().items()}

    def cpu(self) -> dict[str, float]:
        return {service: self.docker.stats(c)[0] for service, c in self.containers().items()}

    def api(self) -> httpx.Client:
        token = httpx.post(
            f"http://127.0.0.1:{UI_PORT}/auth/token",
            timeout=30,
            json={"username": self.env["AIRFLOW_ADMIN_USERNAME"], "password": self.env["AIRFLOW_ADMIN_PASSWORD"]},
        ).json()
        return httpx.Client(
            base_url=f"http://127.0.0.1:{UI_PORT}/api/v2",
            timeout=60,
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )


class PeakMemory(threading.Thread):
    """Samples every container's memory once a second; keeps each service's peak and the stack's."""

    def __init__(self, stack: Stack):
        super().__init__(daemon=True)
        self.stack, self.containers = stack, stack.containers()
        self.per_service: dict[str, float] = {}
        self.total = 0.0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            sample = {s: self.stack.docker.stats(c)[1] for s, c in self.containers.items()}
            for service, mib in sample.items():
                self.per_service[service] = max(self.per_service.get(service, 0.0), round(mib, 1))
            self.total = max(self.total, sum(sample.values()))
            self.stopping.wait(1)


def seconds(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def percentile(values: list[float], p: float) -> float | None:
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return round(values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))], 2)


def task_instances(api: httpx.Client, dag_id: str, run_id: str) -> list[dict]:
    found, offset = [], 0
    while True:
        page = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100, "offset": offset}).json()
        found += page["task_instances"]
        offset += 100
        if offset >= page["total_entries"]:
            return found


def trigger(api: httpx.Client, dag_id: str) -> str:
    api.patch(f"/dags/{dag_id}", json={"is_paused": False}).raise_for_status()
    created = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    created.raise_for_status()
    return created.json()["dag_run_id"]


def wait_runs(api: httpx.Client, dag_id: str, run_ids: list[str], poll: float = 1.0) -> dict[str, str]:
    """Polls the DAG's runs, one request per `poll` seconds: each answer serialises every run's
    task instances (their DAG versions), so polling faster would load the api-server it measures
    (30 % of its CPU at 2 polls/s during the 1,000-task run, py-spy)."""
    deadline, states = time.monotonic() + RUN_TIMEOUT, {}
    while time.monotonic() < deadline:
        page = api.get(f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "-run_after"}).json()
        for run in page["dag_runs"]:
            if run["dag_run_id"] in run_ids and run["state"] in ("success", "failed"):
                states[run["dag_run_id"]] = run["state"]
        if len(states) == len(run_ids):
            return states
        time.sleep(poll)
    raise SystemExit(f"{dag_id}: runs not finished within {RUN_TIMEOUT} s")


def fanout(stack: Stack, api: httpx.Client, dag_id: str) -> dict:
    peak = PeakMemory(stack)
    cpu_before = stack.cpu()
    peak.start()
    started = time.monotonic()
    run_id = trigger(api, dag_id)
    state = wait_runs(api, dag_id, [run_id], poll=max(1.0, DAGS[dag_id] / 200))[run_id]  # 1,000 tasks: every 5 s
    elapsed = time.monotonic() - started
    peak.stopping.set()
    peak.join()
    cpu_after = stack.cpu()
    cpu_by_service = {s: round(cpu_after[s] - cpu_before.get(s, 0.0), 1) for s in cpu_after}
    cpu = sum(cpu_by_service.values())
    tis = task_instances(api, dag_id, run_id)
    run = api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
    to_queue = [seconds(t.get("scheduled_when"), t.get("queued_when")) for t in tis]
    to_start = [seconds(t.get("queued_when"), t.get("start_date")) for t in tis]
    return {
        "state": state,
        "tasks": len(tis),
        "failed_tasks": sum(t["state"] != "success" for t in tis),
        "trigger_to_success_s": round(elapsed, 1),
        "tasks_per_s": round(len(tis) / seconds(run["start_date"], run["end_date"]), 2),
        "scheduled_to_queued_p50_s": percentile(to_queue, 50),
        "scheduled_to_queued_p95_s": percentile(to_queue, 95),
        "queued_to_start_p50_s": percentile(to_start, 50),
        "queued_to_start_p95_s": percentile(to_start, 95),
        "cpu_seconds_per_task": round(cpu / max(1, len(tis)), 3),
        "cpu_seconds_by_service": cpu_by_service,
        "peak_memory_mib": peak.per_service,
        "peak_memory_total_mib": round(peak.total, 1),
    }


def median_run(runs: list[dict]) -> dict:
    """The warm run with the median tasks/s, whole (so that one noisy run on a shared 2-core
    machine does not decide a ratio), with the highest peak memory of all of them."""
    median = dict(sorted(runs, key=lambda r: r["tasks_per_s"])[len(runs) // 2])
    highest = max(runs, key=lambda r: r["peak_memory_total_mib"])
    median["peak_memory_mib"], median["peak_memory_total_mib"] = (
        highest["peak_memory_mib"],
        highest["peak_memory_total_mib"],
    )
    return median


def concurrent_runs(api: httpx.Client, count: int = 50) -> dict:
    started = time.monotonic()
    run_ids = [trigger(api, "bench_small") for _ in range(count)]
    states = wait_runs(api, "bench_small", run_ids)
    failed = sum(t["state"] != "success" for r in run_ids for t in task_instances(api, "bench_small", r))
    return {
        "runs": count,
        "failed_runs": sum(s != "success" for s in states.values()),
        "failed_tasks": failed,
        "all_done_s": round(time.monotonic() - started, 1),
    }


def measure(profile: str, quick: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{profile}-") as workdir:
        stack = Stack(profile, Path(workdir))
        try:
            result = {"up_to_healthy_s": round(stack.up(), 1)}
            time.sleep(30)  # settle before the idle sample (not a synchronisation)
            result["idle_memory_mib"] = stack.memory()
            result["idle_memory_total_mib"] = round(sum(result["idle_memory_mib"].values()), 1)
            # Per process: [command, PSS MiB, private MiB].
            result["idle_processes_mib"] = {s: stack.docker.processes(c) for s, c in stack.containers().items()}
            with stack.api() as api:
                for dag_id in DAGS:  # parsed and listed before the clock starts
                    deadline = time.monotonic() + 300
                    while api.get(f"/dags/{dag_id}").status_code != 200:
                        if time.monotonic() > deadline:
                            raise SystemExit(f"{profile}: {dag_id} not parsed within 300 s")
                        time.sleep(1)
                result["fanout_100_first"] = fanout(stack, api, "bench_fanout_100")
                result["fanout_100_warm_runs"] = [fanout(stack, api, "bench_fanout_100") for _ in range(WARM_RUNS)]
                result["fanout_100"] = median_run(result["fanout_100_warm_runs"])
                result["concurrent_50_runs"] = concurrent_runs(api)
                if not quick:
                    result["fanout_1000"] = fanout(stack, api, "bench_fanout_1000")
            print(f"{profile}: {json.dumps(result)}", file=sys.stderr)
            return result
        finally:
            stack.run("down", "-v", "--remove-orphans")


ROWS = [
    ("up to healthy (s)", lambda r: r["up_to_healthy_s"], "lower"),
    (
        f"100 tasks, warm (median of {WARM_RUNS}): trigger to success (s)",
        lambda r: r["fanout_100"]["trigger_to_success_s"],
        "lower",
    ),
    (f"100 tasks, warm (median of {WARM_RUNS}): tasks/s", lambda r: r["fanout_100"]["tasks_per_s"], "higher"),
    ("100 tasks: scheduled->queued p50 (s)", lambda r: r["fanout_100"]["scheduled_to_queued_p50_s"], "lower"),
    ("100 tasks: queued->start p50 (s)", lambda r: r["fanout_100"]["queued_to_start_p50_s"], "lower"),
    ("100 tasks: scheduled->queued p95 (s)", lambda r: r["fanout_100"]["scheduled_to_queued_p95_s"], "lower"),
    ("100 tasks: queued->start p95 (s)", lambda r: r["fanout_100"]["queued_to_start_p95_s"], "lower"),
    ("100 tasks: CPU-s per task", lambda r: r["fanout_100"]["cpu_seconds_per_task"], "lower"),
    ("1000 tasks: trigger to success (s)", lambda r: r["fanout_1000"]["trigger_to_success_s"], "lower"),
    ("1000 tasks: tasks/s", lambda r: r["fanout_1000"]["tasks_per_s"], "higher"),
    ("1000 tasks: scheduled->queued p50 (s)", lambda r: r["fanout_1000"]["scheduled_to_queued_p50_s"], "lower"),
    ("1000 tasks: queued->start p50 (s)", lambda r: r["fanout_1000"]["queued_to_start_p50_s"], "lower"),
    ("1000 tasks: queued->start p95 (s)", lambda r: r["fanout_1000"]["queued_to_start_p95_s"], "lower"),
    ("1000 tasks: CPU-s per task", lambda r: r["fanout_1000"]["cpu_seconds_per_task"], "lower"),
    ("1000 tasks: failed tasks", lambda r: r["fanout_1000"]["failed_tasks"], "lower"),
    ("idle memory (MiB)", lambda r: r["idle_memory_total_mib"], "lower"),
    ("peak memory, 100 tasks (MiB)", lambda r: r["fanout_100"]["peak_memory_total_mib"], "lower"),
    ("peak memory, 1000 tasks (MiB)", lambda r: r["fanout_1000"]["peak_memory_total_mib"], "lower"),
    ("50 concurrent runs: all done (s)", lambda r: r["concurrent_50_runs"]["all_done_s"], "lower"),
    ("50 concurrent runs: failed tasks", lambda r: r["concurrent_50_runs"]["failed_tasks"], "lower"),
]


def report(results: dict[str, dict]) -> list[dict]:
    rows = []
    for label, get, better in ROWS:
        try:
            values = {p: get(r) for p, r in results.items()}
        except KeyError:  # a part skipped with --quick
            continue
        ratio = None
        if {"stock", "ours"} <= set(values) and values["stock"] and values["ours"]:
            ratio = values["stock"] / values["ours"] if better == "lower" else values["ours"] / values["stock"]
        rows.append({"metric": label, **values, "ours_better_by": round(ratio, 2) if ratio else None})
        print(f"{label:44} " + "  ".join(f"{p}={v}" for p, v in values.items()) + (f"  x{ratio:.2f}" if ratio else ""))
    return rows


def markdown(rows: list[dict], profiles: list[str]) -> str:
    lines = [f"| metric | {' | '.join(profiles)} | ours better by |", "|---|" + "---|" * (len(profiles) + 1)]
    for row in rows:
        ratio = f"x{row['ours_better_by']}" if row["ours_better_by"] else ""
        lines.append(f"| {row['metric']} | {' | '.join(str(row[p]) for p in profiles)} | {ratio} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["ours_better_by"]]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    ax.barh([r["metric"] for r in rows], [r["ours_better_by"] for r in rows], color="#3b7dd8")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("ours vs stock (x times better; 1 = the same)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="stock,ours")
    parser.add_argument(
        "--quick", action="store_true", help="skip the 1,000-task DAG, which takes 8-9 min per profile on 2 cores"
    )
    args = parser.parse_args()
    results = {profile: measure(profile, args.quick) for profile in args.profiles.split(",")}
    rows = report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "stock-vs-ours.json"
    out.write_text(
        json.dumps(
            {"measured_at": datetime.now().isoformat(timespec="seconds"), "results": results, "table": rows}, indent=2
        )
        + "\n"
    )
    (RESULTS / "stock-vs-ours.md").write_text(markdown(rows, list(results)))
    if {"stock", "ours"} <= set(results):
        chart(rows, RESULTS / "stock-vs-ours.png")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
