"""Used by tests/e2e/test_faults.py: one task allocates memory until the kernel kills it, while
four others run beside it on the same worker.

`hog` writes 64 MiB blocks until the container's memory limit is reached. It refuses to start
when the container has no limit (cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`): it would
take the host's memory instead. It has no retries, so its failure shows as is.
"""

import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
)
def fault_oom():
    @task
    def hog() -> None:
        v2, v1 = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        limit = (v2 if v2.exists() else v1).read_text().strip()
        if limit == "max" or int(limit) >= 1 << 50:
            raise RuntimeError("the container has no memory limit: refusing to take the host's memory")
        blocks = []
        for _ in range(int(limit) // (64 << 20) + 16):
            blocks.append(b"x" * (64 << 20))
        raise RuntimeError(f"allocated {len(blocks) * 64} MiB past the limit of {limit} bytes without being killed")

    @task
    def work(i: int) -> int:
        time.sleep(20)
        return i

    hog()
    work.expand(i=list(range(4)))


fault_oom()
