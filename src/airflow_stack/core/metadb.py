"""Direct access to the metadata database without importing Airflow: a connection from
`[database] sql_alchemy_conn`, the job heartbeat query of the health probes and the monitor,
what the monitor reads of task instances (counts, states, the queued ones) and its one write
(backdating a queued task whose message the broker lost), the table in which `init`
records the shared secrets' fingerprints, and the Alembic revision the database is at."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

from airflow_stack.core import settings

FINGERPRINT_TABLE = "airflow_stack_secret_fingerprint"


def libpq_url(sqlalchemy_url: str) -> str:
    """`postgresql+psycopg2://...` -> `postgresql://...` (what libpq understands)."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def connect(env: Mapping[str, str], timeout: int = 5):
    import psycopg2

    url = settings.SQL_ALCHEMY_CONN.raw(env) or ""
    return psycopg2.connect(libpq_url(url), connect_timeout=timeout)


@contextlib.contextmanager
def shared_connection(env: Mapping[str, str]) -> Iterator[Callable[[], object]]:
    """A function that connects on its first call and returns that connection on every call;
    the connection, if one was made, is closed on leaving."""
    made = []

    def connection():
        if not made:
            made.append(connect(env))
        return made[0]

    try:
        yield connection
    finally:
        for conn in made:
            conn.close()


def heartbeat_age(conn, job_type: str, hostnames: list[str] | None) -> float | None:
    """Seconds since the newest running job of `job_type` (on one of `hostnames`, when given)
    heartbeated."""
    where = " AND hostname = ANY(%s)" if hostnames is not None else ""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT EXTRACT(EPOCH FROM now() - latest_heartbeat) FROM job"
            f" WHERE job_type = %s AND state = 'running'{where}"
            " ORDER BY latest_heartbeat DESC LIMIT 1",
            (job_type, hostnames) if hostnames is not None else (job_type,),
        )
        row = cursor.fetchone()
    return None if row is None else float(row[0])


def task_counts(conn, states: tuple[str, ...]) -> dict[tuple[str, str], int]:
    """{(state, queue): task instances} for the given states."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT state, queue, count(*) FROM task_instance WHERE state = ANY(%s) GROUP BY state, queue",
            (list(states),),
        )
        return {(state, queue or "default"): count for state, queue, count in cursor.fetchall()}


def task_instance_states(conn, ids: list[str]) -> dict[str, str]:
    """{task instance id: state} for those of `ids` that exist (Airflow 3's ids are UUIDs)."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT id::text, state FROM task_instance WHERE id = ANY(%s::uuid[])", (ids,))
        return {ti_id: state or "none" for ti_id, state in cursor.fetchall()}


def oldest_queued_age(conn) -> float | None:
    """Seconds the longest-queued task instance has waited; None when none is queued."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT EXTRACT(EPOCH FROM now() - min(queued_dttm)) FROM task_instance WHERE state = 'queued'")
        row = cursor.fetchone()
    return None if row is None or row[0] is None else max(0.0, float(row[0]))


def queued_task_instances(conn, older_than: float, limit: int = 5000) -> list[tuple]:
    """Task instances `queued` for at least `older_than` seconds that have a Celery task id:
    (id, Celery task id, queue, queued_dttm, "dag.task[index] try N"), oldest first."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT id::text, external_executor_id, coalesce(queue, 'default'), queued_dttm,"
            " dag_id || '.' || task_id || CASE WHEN map_index >= 0 THEN '[' || map_index || ']' ELSE '' END"
            " || ' try ' || try_number"
            " FROM task_instance WHERE state = 'queued' AND external_executor_id IS NOT NULL"
            " AND queued_dttm < now() - make_interval(secs => %s) ORDER BY queued_dttm LIMIT %s",
            (older_than, limit),
        )
        return cursor.fetchall()


def backdate_queued(conn, ti_id: str, queued_at, by: float) -> bool:
    """Move a queued task instance's `queued_dttm` `by` seconds into the past, so that the
    scheduler's stuck-in-queued check takes it now; only if it is still in the queuing that
    `queued_at` names. True if it was."""
    with conn, conn.cursor() as cursor:
        cursor.execute(
            "UPDATE task_instance SET queued_dttm = now() - make_interval(secs => %s)"
            " WHERE id = %s::uuid AND state = 'queued' AND queued_dttm = %s",
            (by, ti_id, queued_at),
        )
        return cursor.rowcount == 1


def read_fingerprints(conn) -> dict[str, str]:
    with conn.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (FINGERPRINT_TABLE,))
        if cursor.fetchone()[0] is None:
            return {}
        cursor.execute(f"SELECT name, fingerprint FROM {FINGERPRINT_TABLE}")
        return dict(cursor.fetchall())


def write_fingerprints(conn, fingerprints: Mapping[str, str]) -> None:
    with conn, conn.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {FINGERPRINT_TABLE} ("
            " name VARCHAR(64) PRIMARY KEY, fingerprint VARCHAR(64) NOT NULL,"
            " recorded_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())"
        )
        for name, fingerprint in fingerprints.items():
            cursor.execute(
                f"INSERT INTO {FINGERPRINT_TABLE} (name, fingerprint) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, recorded_at = now()",
                (name, fingerprint),
            )


def migration_heads(conn) -> list[str] | None:
    """The revisions in Airflow's `alembic_version`, sorted; None when the table does not exist."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT to_regclass('alembic_version')")
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute("SELECT version_num FROM alembic_version")
        return sorted(row[0] for row in cursor.fetchall())
