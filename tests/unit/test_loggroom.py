"""Local log retention: old files and emptied folders go, recent ones stay."""

import os
import time

import pytest

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError
from airflow_stack.ops import loggroom


def test_old_files_and_emptied_folders_are_deleted_recent_ones_kept(tmp_path):
    old_dir = tmp_path / "dag_id=a" / "run_id=1"
    old_dir.mkdir(parents=True)
    old = old_dir / "attempt=1.log"
    old.write_text("old")
    recent = tmp_path / "dag_id=b" / "attempt=1.log"
    recent.parent.mkdir()
    recent.write_text("recent")
    fresh_empty = tmp_path / "dag_id=c"
    fresh_empty.mkdir()
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    assert loggroom.groom(tmp_path, 5 * 86400, now=time.time()) == (1, 0)  # its folders are new
    for folder in (old_dir, old_dir.parent):
        os.utime(folder, (ten_days_ago, ten_days_ago))
    assert loggroom.groom(tmp_path, 5 * 86400) == (0, 2)
    assert fresh_empty.is_dir()
    assert not (tmp_path / "dag_id=a").exists()
    assert recent.read_text() == "recent"
    assert tmp_path.is_dir()


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_retention_must_be_positive(raw):
    with pytest.raises(StackError) as refusal:
        loggroom.serve({settings.LOG_RETENTION_DAYS.name: raw}, once=True)
    assert refusal.value.setting == settings.LOG_RETENTION_DAYS.name
