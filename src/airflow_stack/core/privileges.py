"""Which uid a process runs as: dropping root at start, and the uid of the DAG validation sandbox.

Every component of the image runs as a non-root uid. dag-sync alone starts as root, with only
CAP_SETUID and CAP_SETGID (docker-compose.yml, the ECS task), so that the DAG code it imports to
validate a release can run as a uid of its own: `drop` turns the process into
AIRFLOW_STACK_RUN_AS_UID (group 0, like every container of the image) at once, keeping only the
saved uid 0 that lets it start processes as another uid (`become`) and kill them (`kill_all`).
Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal


def drop(uid: int, *, keep_switch: bool) -> None:
    """From root to `uid` with group 0 and no supplementary groups. With `keep_switch` the saved
    uid stays 0: the process can still start processes as another uid, and nothing else."""
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(uid, uid, 0 if keep_switch else uid)


def can_switch() -> bool:
    """True when this process may start processes as another uid (root, or root saved by `drop`)."""
    return 0 in os.getresuid()


def become(uid: int) -> None:
    """For good, in a process of its own: uid and gid `uid`, no supplementary groups."""
    if os.geteuid() != 0:
        os.seteuid(0)  # allowed: the saved uid is 0; gives back CAP_SETUID/CAP_SETGID only
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def kill_all(uid: int, clean: tuple[str, ...] = ()) -> None:
    """SIGKILL every process running as `uid`, then delete what `uid` left at the top of the
    `clean` folders (world-writable ones such as /tmp), from a short-lived process that becomes
    `uid`: kill(-1) reaches exactly the processes of its own uid (never the caller), and the
    sticky bit lets it delete only its own files."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            become(uid)
            with contextlib.suppress(ProcessLookupError):  # none left
                os.kill(-1, signal.SIGKILL)
            for folder in clean:
                _remove_owned(folder, uid)
        except BaseException:  # noqa: BLE001 - a forked child must end here, whatever happened
            code = 1
        os._exit(code)
    os.waitpid(pid, 0)


def _remove_owned(folder: str, uid: int) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        try:
            if entry.stat(follow_symlinks=False).st_uid != uid:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
