"""Log files that cannot be written (the log volume full, read-only or gone) stop nothing.

Airflow's supervisors write logs to files under `[logging] base_log_folder`, each created by
`airflow.sdk.log.init_log_file` and then opened for writing:

- the task supervisor, in a Celery pool process of the worker: each task's log;
- the triggerer: each deferred task's trigger log (`TriggerLoggingFactory`);
- the dag-processor: each DAG file's parse log (under
  `[logging] dag_processor_child_process_log_directory`).

None of them expects an error there. A failed write raises inside the supervisor's loop: the task
fails, and the triggerer and the dag-processor exit, are restarted, and exit again as soon as they
write a log, so deferred tasks never resume and no DAG file is parsed.

`install(component)` wraps `init_log_file` in that process (the worker's main process before the
pool forks, through celery_hooks; the triggerer's and the dag-processor's through
`python -m airflow_stack.ops.logfiles COMPONENT airflow ...`, which then runs Airflow's command
line in the same process), so that the supervisor gets a file that cannot fail:

- the first failure (creating the file, opening it, or a write) is reported once per log file,
  on the component's output: `task log: cannot write dag_id=.../attempt=1.log: [Errno 28] No
  space left on device; the task runs on, the rest of its log goes to the worker's output`;
- from then on that log's lines go to the component's output (the container log), not lost;
- closing a file that failed does not raise.

Everything else is Airflow's: which file, its permissions, the log lines, the upload to S3.
`incompatibilities(component)` pins what this relies on; on a mismatch `install()` wraps nothing
and says so in the component's log.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from airflow_stack.core import components
from airflow_stack.core.errors import log


@dataclass(frozen=True)
class Writer:
    """A component whose supervisor writes log files: what its reports call the log and what goes on."""

    log: str  # "task log"
    goes_on: str  # "the task runs on"
    output: str  # "the worker's output"
    # (function, what its source must contain): where Airflow creates and opens these files.
    uses: tuple[tuple[str, tuple[str, ...]], ...]
    # Modules that imported init_log_file when they were imported: their name is wrapped too.
    rebinds: tuple[str, ...] = ()


WRITERS = {
    "worker": Writer(
        "task log",
        "the task runs on",
        "the worker's output",
        # It must import init_log_file from airflow.sdk.log when it runs (so it gets the wrapper),
        # and write only through the file it opens from the returned path.
        (
            (
                "airflow.sdk.execution_time.supervisor:_configure_logging",
                ("from airflow.sdk.log import init_log_file", "init_log_file(log_path)", 'log_file.open("ab")'),
            ),
        ),
    ),
    "triggerer": Writer(
        "trigger log",
        "the trigger runs on",
        "the triggerer's output",
        (
            (
                "airflow.jobs.triggerer_job_runner:TriggerLoggingFactory.__call__",
                ("from airflow.sdk.log import init_log_file", "init_log_file(self.log_path)", 'log_file.open("wb")'),
            ),
        ),
    ),
    "dag-processor": Writer(
        "DAG file log",
        "parsing goes on",
        "the dag-processor's output",
        (
            (
                "airflow.dag_processing.manager:DagFileProcessorManager._get_logger_for_dag_file",
                ("init_log_file(log_filename)", 'log_file.open("ab")'),
            ),
        ),
        rebinds=("airflow.dag_processing.manager",),
    ),
}


def _resolve(target: str) -> Any:
    module, _, qualname = target.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def incompatibilities(component: str = "worker") -> list[str]:
    """What the wrapper relies on that this Airflow does not have (empty when all is there)."""
    try:
        from airflow.sdk import log as sdk_log
    except ImportError as exc:
        return [f"cannot import what it wraps: {exc}"]
    problems = []
    init = getattr(sdk_log, "init_log_file", None)
    if init is None or tuple(inspect.signature(init).parameters) != ("local_relative_path",):
        problems.append("airflow.sdk.log.init_log_file no longer takes local_relative_path alone")
    for target, needed in WRITERS[component].uses:
        try:
            source = inspect.getsource(_resolve(target))
        except (ImportError, AttributeError, OSError, TypeError) as exc:
            problems.append(f"{target} is gone ({exc!r})")
            continue
        problems += [f"{target} no longer has `{text}`" for text in needed if text not in source]
    for module in WRITERS[component].rebinds:
        if not hasattr(importlib.import_module(module), "init_log_file"):
            problems.append(f"{module} no longer imports init_log_file")
    return problems


class ComponentOutput:
    """The component's own standard error, file descriptor 2: the container log. (Celery replaces
    `sys.stderr` in its pool processes with a logger that takes text.)"""

    def write(self, data: bytes) -> int:
        return os.write(2, data)

    def flush(self) -> None:
        pass


def report(message: str) -> None:
    """One line on the component's output, in one write to file descriptor 2. Not through
    `sys.stderr`: in a Celery pool process that is Celery's logging proxy, which drops what is
    written to it while it is itself logging (a failed write can happen right there), and whose
    lines go wherever the task supervisor has pointed logging at that moment."""
    os.write(2, f"airflow-stack: {message}\n".encode(errors="replace"))


class GuardedLog:
    """A log file that reports its first failure once, then writes to the fallback."""

    def __init__(self, name: str, file: BinaryIO | None, fallback: Any, writer: Writer, failure: OSError | None = None):
        self.name, self.file, self.fallback, self.writer = name, file, fallback, writer
        self.failed = self.closed = False
        if failure is not None:
            self._fail(failure)

    def _fail(self, exc: OSError) -> None:
        self.failed = True
        w = self.writer
        report(f"{w.log}: cannot write {self.name}: {exc}; {w.goes_on}, the rest of this log goes to {w.output}")
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
            raise ValueError(f"{self.writer.log} {self.name} could not be written")
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
        self.closed = True
        if not self.failed and self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()


class GuardedPath(type(Path())):
    """The path Airflow's init_log_file returned, or the one it could not create: `open` gives a
    GuardedLog either way."""

    failure: OSError | None = None
    writer: Writer = WRITERS["worker"]

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "b" not in mode or mode.startswith("r"):
            return super().open(mode, *args, **kwargs)
        fallback = ComponentOutput()
        if self.failure is not None:
            return GuardedLog(str(self), None, fallback, self.writer, self.failure)
        try:
            # Unbuffered, so that a failed write's line is still here to hand to the fallback
            # (structlog flushes after every line anyway).
            return GuardedLog(str(self), super().open(mode, buffering=0), fallback, self.writer)
        except OSError as exc:
            return GuardedLog(str(self), None, fallback, self.writer, exc)


def guard(init_log_file, writer: Writer = WRITERS["worker"]):
    """Wrap Airflow's init_log_file: it returns a GuardedPath, and never raises OSError."""

    def init_guarded(local_relative_path: str) -> Path:
        try:
            path = GuardedPath(init_log_file(local_relative_path))
        except OSError as exc:
            path = GuardedPath(local_relative_path)
            path.failure = exc
        path.writer = writer
        return path

    init_guarded.guarded = True
    return init_guarded


def install(component: str = "worker") -> str:
    """Wrap the creation of log files in this process; returns what it did, for the component's log."""
    writer = WRITERS[component]
    if problems := incompatibilities(component):
        return f"{writer.log}s: Airflow's own file handling (a failed write raises), this Airflow differs: " + (
            "; ".join(problems)
        )
    from airflow.sdk import log as sdk_log

    if not getattr(sdk_log.init_log_file, "guarded", False):
        sdk_log.init_log_file = guard(sdk_log.init_log_file, writer)
    for module in writer.rebinds:
        importlib.import_module(module).init_log_file = sdk_log.init_log_file
    return f"{writer.log}s: one that cannot be written is reported and goes to {writer.output}"


def main(argv: list[str]) -> int:
    """`python -m airflow_stack.ops.logfiles COMPONENT airflow ARGS...`: wrap, call the component's
    `installs` (core.components), then run Airflow's command line in this process."""
    component, command = (argv[0], argv[1:]) if argv else ("", [])
    if component not in WRITERS or command[:1] != ["airflow"]:
        log(f"usage: python -m airflow_stack.ops.logfiles {{{','.join(WRITERS)}}} airflow ARGS...")
        return 2
    log(install(component))
    components.install(components.get(component), os.environ)
    from airflow.__main__ import main as airflow_main

    sys.argv = command
    return airflow_main() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
