"""`make db-backup`, `make db-restore` and `make upgrade-check`: the metadata database, from the host.

    python3 -m airflow_stack.host.database backup  [--dir backups] -- docker compose ...
    python3 -m airflow_stack.host.database restore FILE [--yes]   -- docker compose ...
    python3 -m airflow_stack.host.database upgrade-check          -- docker compose ...

backup    pg_dump (custom format) of the live database into a new file under --dir (git-ignored,
          mode 600); PostgreSQL is started if it is not running. A failed dump leaves no file.
restore   stops every other service, restores into a fresh database in one transaction, then
          swaps it in for the live one (renames): a failed restore leaves the database as it
          was, and a dump of an older Airflow restores over a newer schema. Asks first (or
          --yes). `make db-restore` then starts the stack again.
upgrade-check
          copies the live database into a scratch database on the same server (pg_dump piped
          into pg_restore; the live one is only read), runs the image's migration and
          dags-check against the copy in a one-off container (`airflow-stack upgrade-check`),
          reports, and drops the copy, also when the check fails.

Standard library only: everything happens in the postgres and Airflow containers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

DATABASE = "airflow"
USER = "airflow"
SCRATCH_DATABASE = "airflow_upgrade_check"
RESTORE_DATABASE = "airflow_restore"  # a restore lands here first, then is renamed
REPLACED_DATABASE = "airflow_replaced"
DUMP_MAGIC = b"PGDMP"  # the first bytes of pg_dump's custom format


class Failed(Exception):
    """A step failed; the message says which, with its output."""


def _run(compose: list[str], *args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([*compose, *args], timeout=timeout, **kwargs)
    if result.returncode != 0:
        output = result.stderr if isinstance(result.stderr, str) else (result.stderr or b"").decode(errors="replace")
        raise Failed(f"`docker compose {' '.join(args[:4])} ...` failed (exit {result.returncode}):\n{output.strip()}")
    return result


def _psql(compose: list[str], sql: str) -> None:
    _run(compose, "exec", "-T", "postgres", "psql", "-v", "ON_ERROR_STOP=1", "-U", USER, "-d", "postgres",
         "-c", sql, capture_output=True, text=True)  # fmt: skip


def _fresh_database(compose: list[str], name: str) -> None:
    _psql(compose, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _psql(compose, f"CREATE DATABASE {name} OWNER {USER}")


def _is_dump(path: Path) -> bool:
    """Whether the file starts as pg_dump's custom format does (only those bytes are read)."""
    with open(path, "rb") as handle:
        return handle.read(len(DUMP_MAGIC)) == DUMP_MAGIC


def start_postgres(compose: list[str]) -> None:
    _run(compose, "up", "-d", "--wait", "postgres", capture_output=True, text=True)


def backup(compose: list[str], folder: Path) -> Path:
    start_postgres(compose)
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / time.strftime("airflow-%Y%m%d-%H%M%S.dump")
    partial = target.with_suffix(".dump.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            _run(compose, "exec", "-T", "postgres", "pg_dump", "-U", USER, "-d", DATABASE, "-Fc",
                 stdout=handle, stderr=subprocess.PIPE)  # fmt: skip
        if not _is_dump(partial):
            raise Failed("pg_dump wrote no archive")
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise Failed(f"{question}: no terminal to ask; fix: pass CONFIRM=yes to make")
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise Failed("cancelled; nothing was changed")


def restore(compose: list[str], dump: Path, yes: bool) -> None:
    """Restore into a fresh database, then swap it in: a dump of an older schema cannot be
    restored over a newer one in place (`pg_restore --clean` trips over the newer tables)."""
    try:
        is_dump = _is_dump(dump)
    except OSError as exc:
        raise Failed(f"cannot read {dump} ({exc.strerror}); fix: make db-restore FILE=backups/NAME.dump") from None
    if not is_dump:
        raise Failed(f"{dump} is not a pg_dump archive (custom format, as make db-backup writes)")
    confirm(f"Replace the metadata database with {dump}? Every service but PostgreSQL stops", yes)
    _run(compose, "stop", capture_output=True, text=True)
    start_postgres(compose)
    _fresh_database(compose, RESTORE_DATABASE)
    try:
        with open(dump, "rb") as handle:
            _run(compose, "exec", "-T", "postgres", "pg_restore", "-U", USER, "-d", RESTORE_DATABASE, "--no-owner",
                 "--single-transaction", "--exit-on-error", stdin=handle, capture_output=True)  # fmt: skip
    except Failed:
        _psql(compose, f"DROP DATABASE IF EXISTS {RESTORE_DATABASE} WITH (FORCE)")
        raise
    _psql(compose, f"DROP DATABASE IF EXISTS {REPLACED_DATABASE} WITH (FORCE)")
    _psql(compose, f"ALTER DATABASE {DATABASE} RENAME TO {REPLACED_DATABASE}")
    _psql(compose, f"ALTER DATABASE {RESTORE_DATABASE} RENAME TO {DATABASE}")
    _psql(compose, f"DROP DATABASE {REPLACED_DATABASE} WITH (FORCE)")


def upgrade_check(compose: list[str]) -> int:
    start_postgres(compose)
    try:
        _fresh_database(compose, SCRATCH_DATABASE)
        started = time.monotonic()
        _run(compose, "exec", "-T", "postgres", "bash", "-o", "pipefail", "-c",
             f"pg_dump -U {USER} -d {DATABASE} -Fc"
             f" | pg_restore -U {USER} -d {SCRATCH_DATABASE} --no-owner --exit-on-error",
             capture_output=True, text=True)  # fmt: skip
        print(f"upgrade-check: copied the live database into {SCRATCH_DATABASE} in {time.monotonic() - started:.1f} s")
        result = subprocess.run(
            [*compose, "--profile", "cli", "run", "--rm", "--no-deps", "airflow-cli",
             "upgrade-check", "--database", SCRATCH_DATABASE],
            timeout=1800,
        )  # fmt: skip
        return result.returncode
    finally:
        _psql(compose, f"DROP DATABASE IF EXISTS {SCRATCH_DATABASE} WITH (FORCE)")
        print(f"upgrade-check: dropped {SCRATCH_DATABASE}; the live database was only read")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="database", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("backup").add_argument("--dir", type=Path, default=Path("backups"))
    restore_ = sub.add_parser("restore")
    restore_.add_argument("file", type=Path)
    restore_.add_argument("--yes", action="store_true")
    sub.add_parser("upgrade-check")
    args = parser.parse_args(argv[:split])
    compose = argv[split + 1 :] or ["docker", "compose"]
    try:
        if args.command == "backup":
            target = backup(compose, args.dir)
            print(f"db-backup: wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")
        elif args.command == "restore":
            restore(compose, args.file, args.yes)
            print(f"db-restore: the metadata database is now {args.file}")
        else:
            return upgrade_check(compose)
    except Failed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
