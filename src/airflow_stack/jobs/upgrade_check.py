"""`airflow-stack upgrade-check --database NAME` (`make upgrade-check`): this image's migration
and dags-check against a copy of the metadata database, never the live one.

The host (host.database) has copied the live database into NAME on the same server; this
command points Airflow at NAME, refuses when NAME is the live database, reports the revision
the copy is at and the Airflow version it came from, runs `airflow db migrate` and then
dags-check on the DAG folder, and says whether the upgrade is safe to start.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from airflow_stack.core import settings
from airflow_stack.core.errors import StackError, docs, log


def copy_url(live: str, database: str) -> str:
    parts = urlsplit(live)
    if parts.path.strip("/") == database:
        raise StackError(
            f"upgrade-check was asked to migrate {database}, which is the live metadata database",
            setting=settings.SQL_ALCHEMY_CONN.name,
            fix="run it through make upgrade-check, which copies the database first",
        )
    return urlunsplit(parts._replace(path=f"/{database}"))


def revision(env: MutableMapping[str, str]) -> str:
    """The copy's Alembic revision, with the Airflow version whose migration introduced it."""
    script = (
        "from airflow.utils import db\n"
        "from airflow.utils.session import create_session\n"
        "from sqlalchemy import text\n"
        "with create_session() as s:\n"
        "    rev = s.execute(text('select version_num from alembic_version')).scalar()\n"
        "names = [v for v, r in db._REVISION_HEADS_MAP.items() if r == rev]\n"
        "print(rev, '(Airflow ' + names[-1] + ')' if names else '')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    return result.stdout.strip() or f"unknown ({result.stderr.strip().splitlines()[-1:]})"


def main(database: str, env: MutableMapping[str, str]) -> int:
    import airflow

    live = settings.SQL_ALCHEMY_CONN.read(env)
    env[settings.SQL_ALCHEMY_CONN.name] = copy_url(live, database)
    log(f"upgrade-check: the copy {database} is at revision {revision(env)}")
    log(f"upgrade-check: migrating it with this image's Airflow {airflow.__version__}")
    started = time.monotonic()
    migrate = subprocess.run(["airflow", "db", "migrate"], env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if migrate.returncode != 0:
        sys.stderr.write(migrate.stdout[-5000:] + migrate.stderr[-5000:])
        print(f"upgrade-check: FAILED: the migration to Airflow {airflow.__version__} failed after {elapsed:.0f} s")
        print(f"  the live database is untouched; see {docs('upgrading.md')} before upgrading")
        return 1
    log(f"upgrade-check: migrated in {elapsed:.1f} s; now at revision {revision(env)}")
    from airflow_stack.dags import dagcheck

    checked = dagcheck.main(Path("/opt/airflow/dags"))
    verdict = "OK: the upgrade can start" if checked == 0 else "FAILED: the DAGs do not import with this image"
    print(f"upgrade-check: migration OK ({elapsed:.1f} s), dags-check {verdict}")
    return checked
