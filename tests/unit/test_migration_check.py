import json

import pytest

from airflow_stack.checks import migrations
from airflow_stack.core.errors import StackError

RECORD = {"airflow": "3.3.2", "heads": ["d2f4e1b3c5a7"]}


def no_database():
    raise AssertionError("the check asked the database")


@pytest.fixture
def record(tmp_path):
    path = tmp_path / "migration-heads.json"
    path.write_text(json.dumps(RECORD))
    return path


def test_the_image_record_is_read_and_anything_else_is_no_record(tmp_path, record):
    assert migrations.recorded(record) == RECORD
    assert migrations.recorded(tmp_path / "absent.json") is None
    for text in ("not json", "[]", '{"heads": []}', '{"heads": [1]}', '{"heads": "d2f4e1b3c5a7"}'):
        record.write_text(text)
        assert migrations.recorded(record) is None, text
    # A file larger than any record is read only up to the bound, and so is not one.
    record.write_text(json.dumps({**RECORD, "padding": "x" * migrations.MAX_RECORD_BYTES}))
    assert migrations.recorded(record) is None


def test_a_database_at_the_images_heads_passes():
    migrations.compare(["d2f4e1b3c5a7"], RECORD)


@pytest.mark.parametrize(
    ("found", "problem"),
    [
        (None, "the metadata DB has not been initialised: it has no alembic_version table"),
        ([], "the metadata DB is at migration (none), but this image's Airflow 3.3.2 needs d2f4e1b3c5a7"),
        (["29ce7909c52b"], "the metadata DB is at migration 29ce7909c52b, but this image's Airflow 3.3.2 needs"),
        (["d2f4e1b3c5a7", "ffffffffffff"], "is at migration d2f4e1b3c5a7, ffffffffffff, but"),
    ],
)
def test_any_other_database_is_refused_naming_the_revisions_and_the_fix(found, problem):
    with pytest.raises(StackError) as refused:
        migrations.compare(found, RECORD)
    assert problem in refused.value.problem
    assert refused.value.setting == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
    assert refused.value.fix.startswith("run db-migrate with this image first")


def test_off_no_record_or_a_schema_of_its_own_leave_the_check_to_airflow_without_the_database(tmp_path, record):
    env = {"AIRFLOW__DATABASE__CHECK_MIGRATIONS": "false"}
    assert (
        migrations.check(env, no_database, record) == "migration check: off (AIRFLOW__DATABASE__CHECK_MIGRATIONS=false)"
    )
    env = {}
    assert migrations.check(env, no_database, tmp_path / "absent.json").startswith(
        "migration check: Airflow's own (the image"
    )
    assert "AIRFLOW__DATABASE__CHECK_MIGRATIONS" not in env
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_SCHEMA": "airflow"}
    assert "sql_alchemy_schema" in migrations.check(env, no_database, record)
    assert "AIRFLOW__DATABASE__CHECK_MIGRATIONS" not in env


def test_an_invalid_switch_is_refused_by_name(record):
    with pytest.raises(StackError, match="AIRFLOW__DATABASE__CHECK_MIGRATIONS='maybe'"):
        migrations.check({"AIRFLOW__DATABASE__CHECK_MIGRATIONS": "maybe"}, no_database, record)


def test_only_airflow_components_that_check_their_migration_at_start_have_it_checked():
    from airflow_stack.core import components

    checked = {c.name for c in components.COMPONENTS.values() if c.checks_migrations}
    assert checked == {"api-server", "scheduler", "dag-processor", "triggerer"}


def test_the_start_up_checks_share_one_connection_made_only_when_asked(monkeypatch):
    from airflow_stack.core import metadb

    made = []

    class Connection:
        closed = False

        def close(self):
            self.closed = True

    monkeypatch.setattr(metadb, "connect", lambda env: made.append(Connection()) or made[-1])
    with metadb.shared_connection({}) as connection:
        pass
    assert made == []
    with metadb.shared_connection({}) as connection:
        first, second = connection(), connection()
        assert first is second and not first.closed
    assert len(made) == 1 and made[0].closed
