"""ECS task scale-in protection for Celery workers: on while the worker holds tasks, off when idle.

At scale-in ECS chooses which tasks to stop and skips protected ones. Inside an ECS task the
agent serves `PUT $ECS_AGENT_URI/task-protection/v1/state`. Loaded into the Celery worker by
the image's Celery config (celeryconfig), a thread of the worker's main process checks every
AIRFLOW_STACK_SCALE_IN_PROTECTION_CHECK seconds (5) how many task messages the worker holds
(received, running or prefetched) and turns protection on, for
AIRFLOW_STACK_SCALE_IN_PROTECTION_MINUTES (60, renewed while busy, so a worker that dies
unprotects itself), or off once idle. Outside ECS (no ECS_AGENT_URI) it does nothing.

A failed call is logged and retried at the next check: protection is a preference of the
scale-in, not a condition for running tasks (the warm shutdown and acks still protect them).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError, log
from airflow_stack.worker import periodic


class ProtectionError(Exception):
    pass


class AgentClient:
    """The ECS agent's task-protection endpoint."""

    def __init__(self, agent_uri: str, timeout: float = 5):
        self.url = f"{agent_uri.rstrip('/')}/task-protection/v1/state"
        self.timeout = timeout

    def set(self, enabled: bool, minutes: int) -> dict:
        body = {"ProtectionEnabled": enabled, **({"ExpiresInMinutes": minutes} if enabled else {})}
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), method="PUT", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            raise ProtectionError(f"PUT {self.url} answered {exc.code}: {exc.read()[:300]!r}") from None
        except (OSError, ValueError) as exc:
            raise ProtectionError(f"PUT {self.url} failed: {exc}") from None
        if "failure" in answer or "error" in answer:
            raise ProtectionError(f"PUT {self.url}: {answer.get('failure') or answer.get('error')}")
        return answer.get("protection", {})


class Protector:
    """Decides when to call the agent: on a change of busy/idle, and to renew before expiry."""

    def __init__(self, client: AgentClient, held: Callable[[], int], minutes: int):
        self.client = client
        self.held = held
        self.minutes = minutes
        self.enabled: bool | None = None  # unknown until the first successful call
        self.renew_at = 0.0

    def check(self, now: float | None = None) -> str | None:
        """One check; returns what it did, or None when nothing was needed."""
        now = time.monotonic() if now is None else now
        tasks = self.held()
        want = tasks > 0
        if want == self.enabled and not (want and now >= self.renew_at):
            return None
        try:
            self.client.set(want, self.minutes)
        except ProtectionError as exc:
            return f"scale-in protection: could not turn it {'on' if want else 'off'} ({exc}); retrying"
        renewed = want and self.enabled
        self.enabled = want
        self.renew_at = now + self.minutes * 60 / 2
        if renewed:
            return f"scale-in protection: renewed for {self.minutes} min ({tasks} task(s) held)"
        return (
            f"scale-in protection: on for {self.minutes} min ({tasks} task(s) held)"
            if want
            else "scale-in protection: off (idle)"
        )


def held_by_this_worker() -> int:
    """Task messages this Celery worker holds: received and not yet finished (prefetched included)."""
    from celery.worker import state

    return len(state.reserved_requests)


def start(held: Callable[[], int] = held_by_this_worker) -> threading.Thread | None:
    try:
        agent = settings.ECS_AGENT_URI.read(os.environ)
        if not agent:
            log("scale-in protection: off (not on ECS: no ECS_AGENT_URI)")
            return None
        interval = settings.SCALE_IN_PROTECTION_CHECK.read(os.environ)
        minutes = settings.SCALE_IN_PROTECTION_MINUTES.read(os.environ)
    except StackError as exc:
        # In the worker's main process, after start-up: a bad value must not stop the worker.
        log(f"scale-in protection: off, a setting is invalid: {exc.problem} (fix: {exc.fix})")
        return None
    protector = Protector(AgentClient(agent), held, minutes)

    thread = periodic.start("scale-in protection", interval, protector.check)
    log(f"scale-in protection: checking every {interval} s through {agent}")
    return thread


def connect_to_celery() -> None:
    """Start the thread in the worker's main process once it is ready (Celery signal)."""
    from celery.signals import worker_ready

    worker_ready.connect(lambda **_: start(), weak=False)
