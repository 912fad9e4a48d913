"""In the api-server: with AIRFLOW_STACK_SERVE_LOGS=false, task logs are read from the log folder only.

`false` runs no log server in the worker or the triggerer; it is the local stack's default,
where every container mounts the same log folder, so a running or deferred task's log is already
in that folder, and Airflow reads it there. Airflow's FileTaskHandler (and S3TaskHandler, which
inherits it) would then also ask the log server of the task's host: with none running, each read
of a running task's log would log a traceback in the api-server and list "Could not read served
logs" among the log's sources in the UI.

So `install()`, called when the api-server loads the image's plugin, replaces
`FileTaskHandler._read_from_logs_server` with a reader that reads nothing and names the setting
among the log's sources. It relies on that method's name and parameters and on `_read` calling
it (`incompatibilities()`, checked against the image's Airflow in tests/e2e/test_stack.py); on an
Airflow where they differ it leaves Airflow's reader in place and says why once.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError

PARAMETERS = ("self", "ti", "worker_log_rel_path")
SOURCE = "log servers off (AIRFLOW_STACK_SERVE_LOGS=false): read from the shared log folder"


def _from_the_log_folder_only(self: Any, ti: Any, worker_log_rel_path: str) -> tuple[list[str], list[Any]]:
    return [SOURCE], []


def incompatibilities() -> list[str]:
    """What the replacement relies on that this Airflow does not have (empty when all is there)."""
    try:
        from airflow.utils.log.file_task_handler import FileTaskHandler
    except ImportError as exc:
        return [f"cannot import FileTaskHandler: {exc}"]
    reader = getattr(FileTaskHandler, "_read_from_logs_server", None)
    if reader is None:
        return ["FileTaskHandler._read_from_logs_server is gone"]
    if reader is _from_the_log_folder_only:
        return []
    problems = []
    if (found := tuple(inspect.signature(reader).parameters)) != PARAMETERS:
        problems.append(f"FileTaskHandler._read_from_logs_server takes {found}, not {PARAMETERS}")
    if "_read_from_logs_server" not in inspect.unwrap(FileTaskHandler._read).__code__.co_names:
        problems.append("FileTaskHandler._read no longer calls _read_from_logs_server")
    return problems


def install(env: Mapping[str, str] | None = None) -> str | None:
    """Replace Airflow's served-log reader when the log servers are off; returns what it did, for
    the api-server's log, or None when there is nothing to say (on, or already done)."""
    env = os.environ if env is None else env
    try:
        if settings.SERVE_LOGS.read(env):
            return None
    except StackError:
        return None  # the entrypoint's preflight has already refused this value
    if problems := incompatibilities():
        return (
            "shared logs: this Airflow differs from the one it was written for: "
            + "; ".join(problems)
            + ". Running tasks' logs still come from the log folder; the UI also lists a failed read of the log servers"
        )
    from airflow.utils.log.file_task_handler import FileTaskHandler

    if FileTaskHandler._read_from_logs_server is _from_the_log_folder_only:
        return None
    FileTaskHandler._read_from_logs_server = _from_the_log_folder_only
    return "shared logs: task logs read from the log folder only (AIRFLOW_STACK_SERVE_LOGS=false)"
