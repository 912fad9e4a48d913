"""Benchmark (not a test): from publishing a DAG artifact to the change being schedulable.

Starts its own compose project (`airflow-stack-bench`, UI on 127.0.0.1:28080) from empty
volumes with the `dag-sync` profile and the local artifact server, then for each mode:

- ours:  the shipped defaults (poll every 5 s, bundle refresh every 2 s);
- naive: the seed's timings, a 30 s poll and Airflow's default bundle refresh (300 s).

Each sample publishes a release that adds task `t_<n>` to the DAG `bench_probe` and polls the
REST API (every 0.25 s) until that task is listed: the DAG version that the scheduler runs.
Publishes start at a random point of the poll cycle. It also reads the dag-processor's CPU time
over 60 idle seconds in each mode (what the faster refresh costs).

    uv run --group test python bench/dag_sync_latency.py [--samples 10] [--naive-samples 3]

Prints a table and writes bench/results/dag-sync-latency.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from docker_stats import Docker  # noqa: E402

from airflow_stack.host import dagpublish, envfile, stackwait  # noqa: E402

PROJECT = "airflow-stack-bench"
UI_PORT = 28080
DAG_ID = "bench_probe"
MODES = {
    "ours": {},
    "naive": {"AIRFLOW_STACK_DAG_SYNC_INTERVAL": "30", "AIRFLOW_STACK_DAG_REFRESH_INTERVAL": "300"},
}


def dag_file(n: int) -> str:
    tasks = "\n".join(f"    EmptyOperator(task_id='t_{i}')" for i in range(n + 1))
    return (
        "import pendulum\nfrom airflow.sdk import dag\n"
        "from airflow.providers.standard.operators.empty import EmptyOperator\n\n"
        f"@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz='UTC'), catchup=False)\n"
        f"def {DAG_ID}():\n{tasks}\n\n{DAG_ID}()\n"
    )


class Bench:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.env_file = workdir / ".env"
        self.artifacts = workdir / "artifacts"
        self.compose = [
            "docker",
            "compose",
            "--project-directory",
            str(ROOT),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "--env-file",
            str(self.env_file),
            "-p",
            PROJECT,
        ]
        self.published = 0

    def compose_run(self, *args: str) -> str:
        return subprocess.run([*self.compose, *args], check=True, capture_output=True, text=True, timeout=600).stdout

    def setup(self) -> None:
        uid = envfile.container_uid()
        envfile.write_env_file(self.env_file, uid)
        logs = self.workdir / "logs"
        envfile.prepare_dir(logs, uid)
        self.artifacts.mkdir(mode=0o755)
        for key, value in {
            "AIRFLOW_UI_PORT": str(UI_PORT),
            "FLOWER_PORT": "25555",
            "AIRFLOW_LOGS_DIR": str(logs),
            "COMPOSE_PROFILES": "dag-sync",
            "AIRFLOW_STACK_DAG_RELEASES_DIR": "/opt/airflow/dag-releases",
            "AIRFLOW_STACK_ARTIFACTS_DIR": str(self.artifacts),
        }.items():
            envfile.set_env_value(self.env_file, key, value)
        self.env = envfile.read_env_file(self.env_file)
        self.publish()

    def up(self, settings: dict[str, str]) -> None:
        for key in ("AIRFLOW_STACK_DAG_SYNC_INTERVAL", "AIRFLOW_STACK_DAG_REFRESH_INTERVAL"):
            envfile.set_env_value(self.env_file, key, settings.get(key, ""))
        self.compose_run("up", "-d", "--remove-orphans")
        if not stackwait.wait(self.compose, 300, set(stackwait.ONE_SHOT_SERVICES)):
            raise SystemExit("the bench stack did not become ready")

    def publish(self) -> float:
        folder = self.workdir / f"release-{self.published}"
        folder.mkdir()
        (folder / f"{DAG_ID}.py").write_text(dag_file(self.published))
        started = time.time()
        dagpublish.publish(folder, f"{self.published}.0.0", self.artifacts)
        self.published += 1
        return started

    def api(self) -> httpx.Client:
        token = httpx.post(
            f"http://127.0.0.1:{UI_PORT}/auth/token",
            timeout=30,
            json={"username": self.env["AIRFLOW_ADMIN_USERNAME"], "password": self.env["AIRFLOW_ADMIN_PASSWORD"]},
        ).json()
        return httpx.Client(
            base_url=f"http://127.0.0.1:{UI_PORT}/api/v2",
            timeout=30,
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )

    def wait_for_task(self, api: httpx.Client, task_id: str, timeout: float) -> float:
        deadline = time.time() + timeout
        while time.time() < deadline:
            response = api.get(f"/dags/{DAG_ID}/tasks")
            if response.status_code == 200 and task_id in {t["task_id"] for t in response.json()["tasks"]}:
                return time.time()
            time.sleep(0.25)
        raise SystemExit(f"{task_id} not schedulable within {timeout} s")

    def cpu_seconds(self, service: str, window: float = 60) -> float:
        """CPU seconds the service's container used over `window` s (Docker's stats API:
        cumulative, on cgroup v1 and v2 alike)."""
        container = self.compose_run("ps", "-q", service).strip()
        docker = Docker()

        def usage() -> float:
            return docker.stats(container)[0]

        before = usage()
        time.sleep(window)
        return usage() - before


def measure(bench: Bench, mode: str, samples: int) -> dict:
    settings = MODES[mode]
    bench.up(settings)
    interval = float(settings.get("AIRFLOW_STACK_DAG_SYNC_INTERVAL", "5"))
    latencies = []
    with bench.api() as api:
        bench.wait_for_task(api, f"t_{bench.published - 1}", 600)  # the release live at start
        cpu = bench.cpu_seconds("dag-processor")
        for _ in range(samples):
            time.sleep(random.uniform(0, interval))
            task = f"t_{bench.published}"
            published = bench.publish()
            seen = bench.wait_for_task(api, task, 900)
            latencies.append(round(seen - published, 2))
            print(f"  {mode}: {task} schedulable {latencies[-1]:.1f} s after publishing", flush=True)
    return summary(settings, latencies, cpu)


def summary(settings: dict[str, str], latencies: list[float], cpu: float) -> dict:
    """One mode's row of the report (shared with dag_folder_latency.py)."""
    return {
        "settings": settings or "defaults",
        "samples": latencies,
        "p50_s": round(statistics.median(latencies), 2),
        "max_s": max(latencies),
        "dag_processor_cpu_s_per_idle_minute": round(cpu, 2),
    }


def write_report(report: dict[str, dict], name: str, baseline: str) -> None:
    """Write bench/results/NAME.json and print the table with BASELINE's p50 over ours."""
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'mode':6} {'p50 s':>7} {'max s':>7} {'n':>3}  dag-processor CPU s per idle minute")
    for mode, row in report.items():
        print(
            f"{mode:6} {row['p50_s']:7.1f} {row['max_s']:7.1f} {len(row['samples']):3}  "
            f"{row['dag_processor_cpu_s_per_idle_minute']}"
        )
    print(f"{baseline}/ours p50: {report[baseline]['p50_s'] / report['ours']['p50_s']:.1f}x; written to {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--naive-samples", type=int, default=3)
    args = parser.parse_args()
    bench = Bench(Path(tempfile.mkdtemp(prefix="bench-dag-sync-")))
    bench.setup()
    subprocess.run([*bench.compose, "down", "-v", "--remove-orphans"], capture_output=True)
    report = {}
    try:
        report["ours"] = measure(bench, "ours", args.samples)
        report["naive"] = measure(bench, "naive", args.naive_samples)
    finally:
        subprocess.run([*bench.compose, "down", "-v", "--remove-orphans"], capture_output=True)
    write_report(report, "dag-sync-latency", "naive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
