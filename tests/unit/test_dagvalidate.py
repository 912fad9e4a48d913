"""dag-sync's validation, as the parent sees it: the child that imports the DAGs is replaced by
stand-ins that answer, fail, hang or die, so these run without Airflow."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from airflow_stack.dags import dagvalidate


def child_answering(answer: dict):
    def child(folder: str, conn) -> None:
        conn.send(answer)
        conn.close()
        os._exit(0)

    return child


def test_the_dag_ids_of_a_clean_release_are_returned(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(dagvalidate, "_child", child_answering({"dags": ["a", "b"], "errors": {}}))
    assert dagvalidate.validate(tmp_path, timeout=30) == ["a", "b"]


def test_import_errors_name_each_file_with_the_last_line_of_its_error(monkeypatch, tmp_path: Path):
    errors = {"b.py": "Traceback ...\n  File b.py\nNameError: x", "a.py": "ImportError: no module named y\n"}
    monkeypatch.setattr(dagvalidate, "_child", child_answering({"dags": ["a"], "errors": errors}))
    with pytest.raises(dagvalidate.ValidationFailed) as failed:
        dagvalidate.validate(tmp_path, timeout=30)
    assert str(failed.value) == "2 file(s) with import errors: a.py: ImportError: no module named y; b.py: NameError: x"


def test_a_release_without_a_dag_is_refused(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(dagvalidate, "_child", child_answering({"dags": [], "errors": {}}))
    with pytest.raises(dagvalidate.ValidationFailed, match="holds no DAG"):
        dagvalidate.validate(tmp_path, timeout=30)


def test_a_child_that_hangs_is_killed_after_the_timeout(monkeypatch, tmp_path: Path):
    def hang(folder: str, conn) -> None:
        time.sleep(60)

    monkeypatch.setattr(dagvalidate, "_child", hang)
    started = time.monotonic()
    with pytest.raises(dagvalidate.ValidationFailed, match="took longer than 1 s"):
        dagvalidate.validate(tmp_path, timeout=1)
    assert time.monotonic() - started < 10


def test_a_child_that_dies_is_reported_with_its_exit_code(monkeypatch, tmp_path: Path):
    def die(folder: str, conn) -> None:
        conn.close()
        os._exit(3)

    monkeypatch.setattr(dagvalidate, "_child", die)
    with pytest.raises(dagvalidate.ValidationFailed, match=r"died \(exit code 3\)"):
        dagvalidate.validate(tmp_path, timeout=30)


@pytest.mark.parametrize(("error", "last"), [("a\n\n  b  \n", "b"), ("", "unknown error"), ("only", "only")])
def test_the_last_meaningful_line_is_reported(error, last):
    assert dagvalidate._last_line(error) == last


def test_a_syntax_error_is_reported_with_its_line():
    error = (
        'Traceback (most recent call last):\n  File "/r/dags/a.py", line 3\n    def f(\n         ^\n'
        "SyntaxError: '(' was never closed\n"
    )
    assert dagvalidate._last_line(error) == "SyntaxError: '(' was never closed (line 3)"
    assert dagvalidate._last_line("'(' was never closed (a.py, line 3)") == "'(' was never closed (a.py, line 3)"
