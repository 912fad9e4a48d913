"""A check the worker's main process runs in the background, every few seconds.

scaleprotect and deploydrain each run one: a daemon thread (it never delays the worker's exit)
that calls the check, logs what it says it did, and sleeps for the interval, until the check is
done. An unexpected error is logged and the check runs again at the next interval: these threads
serve ECS, never the tasks, so nothing they meet may stop the worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from airflow_stack.core.errors import log


def start(
    label: str, interval: float, check: Callable[[], str | None], done: Callable[[], bool] = lambda: False
) -> threading.Thread:
    """Run `check` every `interval` seconds in a daemon thread named after `label` until `done()`."""

    def loop() -> None:
        while not done():
            try:
                message = check()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any surprise
                message = f"{label}: unexpected {exc!r}; retrying at the next check"
            if message:
                log(message)
            time.sleep(interval)

    thread = threading.Thread(target=loop, name=label.replace(" ", "-"), daemon=True)
    thread.start()
    return thread
