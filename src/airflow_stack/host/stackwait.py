"""`make up`: wait, bounded, until every compose service is healthy, showing progress.

Host side, standard library only. Reads `docker compose ps --all --format json`: a service
with a healthcheck must be `healthy`, one without must be running, and one-shot jobs must
have exited 0. On failure or timeout it prints the logs of the services that are not ready.

    python3 -m airflow_stack.host.stackwait [--timeout 300] [--one-shot SERVICE] [-- COMPOSE COMMAND]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass

from airflow_stack.core import components

# The compose services that run once and exit 0 when done: the one-shot components.
ONE_SHOT_SERVICES = components.one_shot_names()


@dataclass(frozen=True)
class ServiceState:
    service: str
    state: str
    health: str
    exit_code: int

    def status(self, one_shot: bool) -> str:
        """`ready`, `failed` or a word saying what it waits for."""
        if one_shot:
            if self.state == "exited":
                return "ready" if self.exit_code == 0 else "failed"
            return self.state or "created"
        if self.state in ("exited", "dead"):
            return "failed"
        if self.state != "running":
            return self.state
        if self.health in ("", "healthy"):
            return "ready"
        return self.health


def read_states(compose: list[str]) -> list[ServiceState]:
    result = subprocess.run([*compose, "ps", "--all", "--format", "json"], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    text = result.stdout.strip()
    rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line]
    return [
        ServiceState(row["Service"], row.get("State", ""), row.get("Health", ""), int(row.get("ExitCode", 0)))
        for row in rows
    ]


def wait(compose: list[str], timeout: float, one_shot: set[str], out=sys.stdout) -> bool:
    start = time.monotonic()
    last_line = ""
    while True:
        states = read_states(compose)
        statuses = {s.service: s.status(s.service in one_shot) for s in states}
        waiting = {name: status for name, status in sorted(statuses.items()) if status != "ready"}
        elapsed = time.monotonic() - start
        line = f"{len(statuses) - len(waiting)}/{len(statuses)} ready" + (
            f"; waiting for {', '.join(f'{n} ({s})' for n, s in waiting.items())}" if waiting else ""
        )
        if line != last_line:
            print(f"[{elapsed:5.1f}s] {line}", file=out, flush=True)
            last_line = line
        failed = [name for name, status in waiting.items() if status in ("failed", "unhealthy")]
        if statuses and not waiting:
            return True
        if failed or elapsed > timeout:
            reason = f"failed: {', '.join(failed)}" if failed else f"not ready after {timeout:.0f} s"
            print(f"stack {reason}; logs of the services not ready follow", file=out, flush=True)
            subprocess.run([*compose, "logs", "--no-color", "--tail", "80", *waiting], stdout=out, stderr=out)
            return False
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stackwait", description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--one-shot",
        action="append",
        default=None,
        help=f"services that run once (default: {', '.join(sorted(ONE_SHOT_SERVICES))})",
    )
    parser.add_argument("compose", nargs="*", help="the compose command (default: docker compose)")
    args = parser.parse_args(argv)
    compose = args.compose or ["docker", "compose"]
    try:
        return 0 if wait(compose, args.timeout, set(args.one_shot or ONE_SHOT_SERVICES)) else 1
    except RuntimeError as exc:
        print(f"error: `{' '.join(compose)} ps` failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
