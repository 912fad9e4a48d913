"""Docker's stats API over its unix socket, for the benchmarks: the host's cgroup v1 hides
per-container CPU from the usual places, and the API answers on cgroup v1 and v2 alike. Also each
container's processes with their proportional memory (PSS, from the host's /proc; needs root)."""

from __future__ import annotations

from pathlib import Path

import httpx


class Docker:
    """Docker's stats API over its socket: cumulative CPU and current memory (cgroup v1 and v2)."""

    def __init__(self):
        self.client = httpx.Client(transport=httpx.HTTPTransport(uds="/var/run/docker.sock"), timeout=30)

    def stats(self, container: str) -> tuple[float, float]:
        params = {"stream": "false", "one-shot": "true"}  # one-shot: no second sample, answers at once
        s = self.client.get(f"http://docker/containers/{container}/stats", params=params).json()
        memory = s.get("memory_stats", {})
        cache = memory.get("stats", {}).get("inactive_file", memory.get("stats", {}).get("total_inactive_file", 0))
        return s["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9, (memory.get("usage", 0) - cache) / 2**20

    def processes(self, container: str) -> list[tuple[str, float, float]]:
        """(command, PSS MiB, private MiB) of each process in the container, read from the host's
        /proc. Private (clean and dirty) is what the process alone holds: for a forked pool
        process, the pages it has written since the fork."""
        top = self.client.get(f"http://docker/containers/{container}/top", params={"ps_args": "-o pid,args"}).json()
        found = []
        for pid, args in top.get("Processes", []):
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:  # gone, or not root
                continue
            fields = {line.split()[0].rstrip(":"): int(line.split()[1]) for line in rollup.splitlines()[1:]}
            private_kib = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
            found.append((args[:80], round(fields.get("Pss", 0) / 1024, 1), round(private_kib / 1024, 1)))
        return found
