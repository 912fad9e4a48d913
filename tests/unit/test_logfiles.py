"""The log file guard on real files: /dev/full answers every write with ENOSPC, as a full log
volume does (the Airflow internals it relies on, in the worker, the triggerer and the
dag-processor, are checked in tests/e2e/test_faults.py)."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest

from airflow_stack.ops import logfiles


@pytest.fixture
def output(monkeypatch) -> io.BytesIO:
    """What reaches the worker's output instead of the task log."""
    captured = io.BytesIO()
    monkeypatch.setattr(logfiles, "ComponentOutput", lambda: captured)
    return captured


def write_lines(file, *lines: bytes) -> None:
    for line in lines:  # as structlog's BytesLogger does: a write and a flush per line
        file.write(line)
        file.flush()


def test_a_writable_log_is_left_as_it_is(tmp_path: Path, output: io.BytesIO, capfd):
    init = logfiles.guard(lambda relative: tmp_path / relative)
    file = init("attempt=1.log").open("ab")
    write_lines(file, b"one\n", b"two\n")
    # What Airflow's upload to remote logging reads to find the file.
    assert file.name == str(tmp_path / "attempt=1.log") and file.fileno() > 2
    file.close()
    assert (tmp_path / "attempt=1.log").read_bytes() == b"one\ntwo\n"
    assert output.getvalue() == b"" and capfd.readouterr().err == ""


def test_a_full_volume_is_reported_once_and_the_lines_go_to_the_worker_output(output: io.BytesIO, capfd):
    file = logfiles.guard(lambda relative: Path("/dev/full"))("attempt=1.log").open("ab")
    write_lines(file, b"one\n", b"two\n", b"three\n")
    file.close()
    err = capfd.readouterr().err
    assert err.count("task log: cannot write /dev/full") == 1 and "No space left on device" in err, err
    assert output.getvalue() == b"one\ntwo\nthree\n"  # not one line lost
    with pytest.raises(ValueError):  # Airflow then uploads nothing
        file.fileno()


def test_a_log_file_that_cannot_be_created_is_reported_and_nothing_raises(output: io.BytesIO, capfd):
    def init_log_file(relative: str) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", relative)

    path = logfiles.guard(init_log_file)("dag_id=d/attempt=1.log")
    file = path.open("ab")
    write_lines(file, b"one\n")
    file.close()
    assert "task log: cannot write dag_id=d/attempt=1.log" in capfd.readouterr().err
    assert output.getvalue() == b"one\n"


def test_the_report_reaches_the_output_when_sys_stderr_drops_it(output: io.BytesIO, capfd, monkeypatch):
    """In a Celery pool process sys.stderr is Celery's logging proxy, which drops what is written
    to it while it is itself logging: the report must not depend on it."""

    class Dropping(io.StringIO):
        def write(self, text: str) -> int:
            return 0

    monkeypatch.setattr("sys.stderr", Dropping())
    file = logfiles.guard(lambda relative: Path("/dev/full"))("attempt=1.log").open("ab")
    write_lines(file, b"one\n")
    file.close()
    monkeypatch.undo()
    err = capfd.readouterr().err
    assert err.startswith("airflow-stack: task log: cannot write /dev/full") and err.count("\n") == 1, err
    assert output.getvalue() == b"one\n"


def test_a_triggerer_log_is_reported_as_a_trigger_log_and_closes_as_airflow_expects(output: io.BytesIO, capfd):
    init = logfiles.guard(lambda relative: Path("/dev/full"), logfiles.WRITERS["triggerer"])
    file = init("attempt=1.log.trigger.7.log").open("wb")
    write_lines(file, b"one\n")
    assert not file.closed  # the triggerer closes only a file that is not closed yet
    file.close()
    assert file.closed
    err = capfd.readouterr().err
    assert "trigger log: cannot write /dev/full" in err and "the trigger runs on" in err, err
    assert "the triggerer's output" in err and output.getvalue() == b"one\n"


def test_the_launcher_refuses_an_unknown_component_or_command(capsys):
    assert logfiles.main(["scheduler", "airflow", "scheduler"]) == 2
    assert logfiles.main(["triggerer", "sh", "-c", "true"]) == 2
    assert logfiles.main([]) == 2
    assert "usage: python -m airflow_stack.ops.logfiles {worker,triggerer,dag-processor} airflow ARGS" in (
        capsys.readouterr().err
    )
