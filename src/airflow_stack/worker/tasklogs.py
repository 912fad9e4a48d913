"""A task whose log file cannot be written (the log volume full, read-only or gone) still runs.

Airflow's task supervisor, in a Celery pool process, creates each task's log file under
`[logging] base_log_folder` (`airflow.sdk.log.init_log_file`) and writes every line of the task's
log to it. Neither step expects an error: a failed write raises inside the supervisor's loop.

Installed in the worker's main process before the pool forks (celery_hooks), this wraps
`init_log_file` so that the supervisor gets a file that cannot fail:

- the first failure (creating the file, opening it, or a write) is reported once per task log,
  on the worker's output: `task log: cannot write dag_id=.../attempt=1.log: [Errno 28] No space
  left on device; the task runs on, the rest of its log goes to the worker's output`;
- from then on the task's log lines go to the worker's output (the container log), not lost;
- closing a file that failed does not raise.

Everything else is Airflow's: which file, its permissions, the log lines, the upload to S3.
`incompatibilities()` pins what this relies on; on a mismatch `install()` wraps nothing and
says so in the worker's log.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from pathlib import Path
from typing import Any, BinaryIO

from airflow_stack.core.errors import log


def incompatibilities() -> list[str]:
    """What the wrapper relies on that this Airflow does not have (empty when all is there)."""
    try:
        from airflow.sdk import log as sdk_log
        from airflow.sdk.execution_time import supervisor
    except ImportError as exc:
        return [f"cannot import what it wraps: {exc}"]
    problems = []
    init = getattr(sdk_log, "init_log_file", None)
    if init is None or tuple(inspect.signature(init).parameters) != ("local_relative_path",):
        problems.append("airflow.sdk.log.init_log_file no longer takes local_relative_path alone")
    configure = getattr(supervisor, "_configure_logging", None)
    source = inspect.getsource(configure) if configure is not None else ""
    # It must import init_log_file from airflow.sdk.log when it runs (so it gets the wrapper),
    # and write only through the file it opens from the returned path.
    for needed in ("from airflow.sdk.log import init_log_file", "init_log_file(log_path)", 'log_file.open("ab")'):
        if needed not in source:
            problems.append(f"the supervisor's _configure_logging no longer has `{needed}`")
    return problems


class WorkerOutput:
    """The worker's own standard error, file descriptor 2: the container log. (Celery replaces
    `sys.stderr` in its pool processes with a logger that takes text.)"""

    def write(self, data: bytes) -> int:
        return os.write(2, data)

    def flush(self) -> None:
        pass


class GuardedLog:
    """A task's log file that reports its first failure once, then writes to the fallback."""

    def __init__(self, name: str, file: BinaryIO | None, fallback: Any, failure: OSError | None = None):
        self.name, self.file, self.fallback = name, file, fallback
        self.failed = False
        if failure is not None:
            self._fail(failure)

    def _fail(self, exc: OSError) -> None:
        self.failed = True
        log(
            f"task log: cannot write {self.name}: {exc}; the task runs on, "
            "the rest of its log goes to the worker's output"
        )
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()

    def write(self, data: bytes) -> int:
        if not self.failed and self.file is not None:
            try:
                written = self.file.write(data) or 0  # unbuffered: what the disk took
            except OSError as exc:
                written = 0
                self._fail(exc)
            if written >= len(data):
                return written
            data = data[written:]
        self.fallback.write(data)
        return len(data)

    def fileno(self) -> int:
        """The open file's descriptor. Airflow's upload to remote logging reads it, and `name`, to
        find the file; after a failure it raises, and Airflow uploads nothing."""
        if self.failed or self.file is None:
            raise ValueError(f"task log {self.name} could not be written")
        return self.file.fileno()

    def flush(self) -> None:
        if not self.failed and self.file is not None:
            try:
                self.file.flush()
            except OSError as exc:
                self._fail(exc)
        with contextlib.suppress(OSError, ValueError):
            self.fallback.flush()

    def close(self) -> None:
        if not self.failed and self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()


class GuardedPath(type(Path())):
    """The path Airflow's init_log_file returned, or the one it could not create: `open` gives a
    GuardedLog either way."""

    failure: OSError | None = None

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "b" not in mode or mode.startswith("r"):
            return super().open(mode, *args, **kwargs)
        fallback = WorkerOutput()
        if self.failure is not None:
            return GuardedLog(str(self), None, fallback, self.failure)
        try:
            # Unbuffered, so that a failed write's line is still here to hand to the fallback
            # (structlog flushes after every line anyway).
            return GuardedLog(str(self), super().open(mode, buffering=0), fallback)
        except OSError as exc:
            return GuardedLog(str(self), None, fallback, exc)


def guard(init_log_file):
    """Wrap Airflow's init_log_file: it returns a GuardedPath, and never raises OSError."""

    def init_guarded(local_relative_path: str) -> Path:
        try:
            return GuardedPath(init_log_file(local_relative_path))
        except OSError as exc:
            path = GuardedPath(local_relative_path)
            path.failure = exc
            return path

    return init_guarded


def install() -> str:
    """Wrap the task log file's creation in this process; returns what it did, for the worker's log."""
    if problems := incompatibilities():
        return "task logs: Airflow's own file handling (a failed write fails the task), this Airflow differs: " + (
            "; ".join(problems)
        )
    from airflow.sdk import log as sdk_log

    sdk_log.init_log_file = guard(sdk_log.init_log_file)
    return "task logs: a task log that cannot be written is reported and goes to the worker's output"
