"""Whether the metadata DB is migrated to this image's Airflow, asked before an Airflow component
starts, in place of Airflow's own check.

Airflow's commands check it themselves at start (`[database] check_migrations`): they load
Alembic and every one of Airflow's migration scripts to learn the heads, and keep them for the
process's life (about 8 MiB, 104 modules and 0.15 s of CPU in each of the api-server, the
scheduler, the dag-processor and the triggerer). The heads are fixed by the image, so the build
records them once (`record`), and a component's start-up checks compare the database's
`alembic_version` with that record: one query. When they agree, Airflow's own check is turned
off for that component's process; when they do not, the component refuses to start, as Airflow's
check would, naming the fix. Like Airflow's check, it compares Airflow's core migrations only
(a provider's, such as FAB's, are migrated by db-migrate alongside).

Airflow's own check stays on, with a line in the log saying why, when the image has no record
or the metadata DB is in a schema of its own (`[database] sql_alchemy_schema`).
`AIRFLOW__DATABASE__CHECK_MIGRATIONS=false` turns both off. Standard library and psycopg2 at
start; `record` (the image build) imports Alembic and Airflow.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, MutableMapping
from pathlib import Path

from airflow_stack.core import metadb, settings
from airflow_stack.core.errors import StackError, docs, log

# Inside the virtualenv, so that the image's runtime stage copies it with Airflow.
HEADS_FILE = Path(sys.prefix) / "share" / "airflow-stack" / "migration-heads.json"
MAX_RECORD_BYTES = 64 * 1024


def record(path: Path = HEADS_FILE) -> dict:
    """Write the installed Airflow's migration heads (what Airflow's check compares) to `path`."""
    import airflow
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(Path(airflow.__file__).parent / "migrations"))
    heads = {"airflow": airflow.__version__, "heads": sorted(scripts.get_heads())}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(heads) + "\n")
    return heads


def recorded(path: Path = HEADS_FILE) -> dict | None:
    """The record the image build wrote, or None when there is none (or it is not one)."""
    try:
        with path.open("rb") as file:
            data = json.loads(file.read(MAX_RECORD_BYTES))
    except (OSError, ValueError):
        return None
    heads = data.get("heads") if isinstance(data, dict) else None
    if not isinstance(heads, list) or not heads or not all(isinstance(head, str) for head in heads):
        return None
    return {"airflow": str(data.get("airflow", "?")), "heads": sorted(heads)}


def compare(found: list[str] | None, expected: dict) -> None:
    """Refuse, naming the fix, unless the database is at exactly the image's heads."""
    fix = (
        "run db-migrate with this image first (compose runs it before every component; on ECS, "
        f"`make -C deploy/aws apps` runs it before the services move to a new image); see {docs('upgrading.md')}"
    )
    if found is None:
        raise StackError(
            "the metadata DB has not been initialised: it has no alembic_version table",
            setting=settings.SQL_ALCHEMY_CONN.name,
            fix=fix,
        )
    if found != expected["heads"]:
        raise StackError(
            f"the metadata DB is at migration {', '.join(found) or '(none)'}, but this image's Airflow "
            f"{expected['airflow']} needs {', '.join(expected['heads'])}: a component must not run on a "
            "database its Airflow has not migrated",
            setting=settings.SQL_ALCHEMY_CONN.name,
            fix=fix,
        )


def check(env: MutableMapping[str, str], connection: Callable[[], object], path: Path = HEADS_FILE) -> str:
    """Compare the database (`connection()`: the start-up checks' connection to it) with the image's
    record and, when they agree, turn Airflow's own check off in `env` (the component's process
    reads it); a line for the log."""
    if not settings.CHECK_MIGRATIONS.read(env):
        return f"migration check: off ({settings.CHECK_MIGRATIONS.name}=false)"
    expected = recorded(path)
    if expected is None:
        return f"migration check: Airflow's own (the image has no record of its migration heads at {path})"
    if settings.SQL_ALCHEMY_SCHEMA.raw(env):
        return (
            "migration check: Airflow's own (the metadata DB is in a schema of its own, [database] sql_alchemy_schema)"
        )
    found = metadb.migration_heads(connection())
    compare(found, expected)
    env[settings.CHECK_MIGRATIONS.name] = "False"
    return (
        f"migration check: the metadata DB is at {', '.join(found)}, this image's Airflow "
        f"{expected['airflow']}; Airflow's own check (which loads every migration script) is off for this process"
    )


if __name__ == "__main__":  # the image build: python -m airflow_stack.checks.migrations
    log(f"migration heads recorded at {HEADS_FILE}: {record()}")
