"""Benchmark (not a test): from writing a new DAG file into the DAG folder to the REST API listing it.

Starts its own compose project (`airflow-stack-bench`, UI on 127.0.0.1:28080) from empty volumes
in folder mode (AIRFLOW_DAGS_DIR, no dag-sync), then for each mode:

- ours:  the shipped default (the dag-processor lists the folder every 2 s);
- stock: Airflow's default folder refresh, 300 s (AIRFLOW_STACK_DAG_REFRESH_INTERVAL=300).

Each sample writes a new file with a new DAG at a random moment and polls GET /dags/<id> every
0.25 s until it answers 200. It also reads the dag-processor's CPU time over 60 idle seconds in
each mode (what the faster refresh costs), with the same folder each time: SEED_FILES DAG files,
the samples of the previous mode removed.

    uv run --project tools/bench --frozen python bench/dag_folder_latency.py [--samples 10] [--stock-samples 3]

Prints a table and writes bench/results/dag-folder-latency.json.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dag_sync_latency import UI_PORT, Bench, summary, write_report

from airflow_stack.host import envfile, stackwait

MODES = {"ours": {}, "stock": {"AIRFLOW_STACK_DAG_REFRESH_INTERVAL": "300"}}
SEED_FILES = 10


class FolderBench(Bench):
    def setup(self) -> None:
        uid = envfile.container_uid()
        envfile.write_env_file(self.env_file, uid)
        logs, self.dags = self.workdir / "logs", self.workdir / "dags"
        envfile.prepare_dir(logs, uid)
        self.dags.mkdir(mode=0o755)
        options = self.workdir / "airflow.env"
        options.touch()
        for n in range(SEED_FILES):
            self.write_dag(n, prefix="bench_seed")
        for key, value in {
            "AIRFLOW_UI_PORT": str(UI_PORT),
            "FLOWER_PORT": "25555",
            "AIRFLOW_LOGS_DIR": str(logs),
            "AIRFLOW_DAGS_DIR": str(self.dags),
            "AIRFLOW_ENV_FILE": str(options),
        }.items():
            envfile.set_env_value(self.env_file, key, value)
        self.env = envfile.read_env_file(self.env_file)

    def up(self, settings: dict[str, str]) -> None:
        envfile.set_env_value(self.env_file, "AIRFLOW_STACK_DAG_REFRESH_INTERVAL", settings.get(
            "AIRFLOW_STACK_DAG_REFRESH_INTERVAL", ""))  # fmt: skip
        self.compose_run("up", "-d", "--remove-orphans")
        if not stackwait.wait(self.compose, 300, set(stackwait.ONE_SHOT_SERVICES)):
            raise SystemExit("the bench stack did not become ready")

    def write_dag(self, n: int, prefix: str = "bench_new") -> tuple[str, float]:
        dag_id = f"{prefix}_{n}"
        path = self.dags / f"{dag_id}.py"
        path.write_text(
            "import pendulum\nfrom airflow.sdk import dag\n"
            "from airflow.providers.standard.operators.empty import EmptyOperator\n\n"
            f"@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz='UTC'), catchup=False)\n"
            f"def {dag_id}():\n    EmptyOperator(task_id='t')\n\n{dag_id}()\n"
        )
        path.chmod(0o644)
        return dag_id, time.time()


def wait_listed(api, dag_id: str, timeout: float) -> float:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if api.get(f"/dags/{dag_id}").status_code == 200:
            return time.time()
        time.sleep(0.25)
    raise SystemExit(f"{dag_id} not listed within {timeout} s")


def measure(bench: FolderBench, mode: str, samples: int, start: int) -> dict:
    settings = MODES[mode]
    for sample in bench.dags.glob("bench_new_*.py"):
        sample.unlink()
    bench.up(settings)
    refresh = float(settings.get("AIRFLOW_STACK_DAG_REFRESH_INTERVAL", "2"))
    latencies = []
    with bench.api() as api:
        wait_listed(api, f"bench_seed_{SEED_FILES - 1}", 600)
        time.sleep(30)  # past start-up parsing, so the CPU window is idle
        cpu = bench.cpu_seconds("dag-processor")
        for n in range(start, start + samples):
            time.sleep(random.uniform(0, min(refresh, 10)))
            dag_id, written = bench.write_dag(n)
            latencies.append(round(wait_listed(api, dag_id, 900) - written, 2))
            print(f"  {mode}: {dag_id} listed {latencies[-1]:.1f} s after its file was written", flush=True)
    return summary(settings, latencies, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--stock-samples", type=int, default=3)
    args = parser.parse_args()
    bench = FolderBench(Path(tempfile.mkdtemp(prefix="bench-dag-folder-")))
    bench.setup()
    subprocess.run([*bench.compose, "down", "-v", "--remove-orphans"], capture_output=True)
    report = {}
    try:
        report["ours"] = measure(bench, "ours", args.samples, 0)
        report["stock"] = measure(bench, "stock", args.stock_samples, args.samples)
    finally:
        subprocess.run([*bench.compose, "down", "-v", "--remove-orphans"], capture_output=True)
    write_report(report, "dag-folder-latency", "stock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
