"""`airflow-stack groom-logs`: keep the local log folder from filling the disk.

Every AIRFLOW_STACK_LOG_GROOM_INTERVAL seconds (default 3600) it deletes files under
[logging] base_log_folder older than AIRFLOW_STACK_LOG_RETENTION_DAYS (default 15), then the
empty folders that are as old (a new empty folder is about to receive a log). With S3 remote logging on, task logs are in S3 already; this keeps the
component logs (scheduler, dag-processor) in check too. `--once` runs one pass.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from airflow_stack.core.errors import StackError, log

RETENTION_SETTING = "AIRFLOW_STACK_LOG_RETENTION_DAYS"
INTERVAL_SETTING = "AIRFLOW_STACK_LOG_GROOM_INTERVAL"


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = -1
    if value <= 0:
        raise StackError(f"{name}={raw!r} is not a positive number", setting=name, fix=f"set it to e.g. {default:g}")
    return value


def groom(folder: Path, max_age_s: float, now: float | None = None) -> tuple[int, int]:
    """Delete files older than `max_age_s` and the folders that become empty: (files, folders)."""
    now = time.time() if now is None else now
    files = folders = 0
    # Folder ages as they are before this pass: deleting a child refreshes its parent's mtime.
    old_folders = set()
    for root, _, _ in os.walk(folder):
        try:
            if now - Path(root).lstat().st_mtime > max_age_s:
                old_folders.add(root)
        except FileNotFoundError:
            pass
    for root, dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            path = Path(root, name)
            try:
                if now - path.lstat().st_mtime > max_age_s:
                    path.unlink()
                    files += 1
            except FileNotFoundError:
                pass
        # An empty folder goes only when it is old too: a new one is about to receive a log.
        if Path(root) != folder and root in old_folders:
            try:
                Path(root).rmdir()  # only succeeds when empty
                folders += 1
            except OSError:
                pass
    return files, folders


def main(args: list[str], env: Mapping[str, str]) -> None:
    folder = Path(env.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER", "/opt/airflow/logs"))
    days = _positive(env, RETENTION_SETTING, 15)
    interval = _positive(env, INTERVAL_SETTING, 3600)
    log(f"groom-logs: deleting files older than {days:g} days under {folder} every {interval:g} s")
    while True:
        files, folders = groom(folder, days * 86400)
        log(f"groom-logs: deleted {files} file(s) and {folders} empty folder(s)")
        if "--once" in args:
            return
        time.sleep(interval)
