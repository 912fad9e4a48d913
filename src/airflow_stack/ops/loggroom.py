"""The `log-groomer` component: keep the local log folder from filling the disk.

Every AIRFLOW_STACK_LOG_GROOM_INTERVAL seconds (default 3600) it deletes files under
[logging] base_log_folder older than AIRFLOW_STACK_LOG_RETENTION_DAYS (default 15), then the
empty folders that are as old (a new empty folder is about to receive a log). With S3 remote
logging on, task logs are in S3 already; this keeps the component logs (scheduler,
dag-processor) in check too. `airflow-stack groom-logs --once`
runs one pass.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from airflow_stack.core import settings
from airflow_stack.core.errors import log


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
    for root, _, filenames in os.walk(folder, topdown=False):
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


def serve(env: Mapping[str, str], once: bool = False) -> int:
    """Groom every AIRFLOW_STACK_LOG_GROOM_INTERVAL seconds (once: one pass)."""
    folder = settings.BASE_LOG_FOLDER.read(env)
    days = settings.LOG_RETENTION_DAYS.read(env)
    interval = settings.LOG_GROOM_INTERVAL.read(env)
    log(f"log-groomer: deleting files older than {days:g} days under {folder} every {interval:g} s")
    while True:
        files, folders = groom(folder, days * 86400)
        log(f"log-groomer: deleted {files} file(s) and {folders} empty folder(s)")
        if once:
            return 0
        time.sleep(interval)
