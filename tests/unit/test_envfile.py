"""make init: .env written once, with valid and distinct secrets."""

import base64
import os
import stat

from airflow_stack.host import envfile


def test_writes_every_secret_once_with_private_mode(tmp_path):
    env_file = tmp_path / ".env"
    assert envfile.write_env_file(env_file, 1000)
    values = envfile.read_env_file(env_file)
    for key in (
        "AIRFLOW_FERNET_KEY",
        "AIRFLOW_JWT_SECRET",
        "AIRFLOW_API_SECRET_KEY",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "AIRFLOW_ADMIN_PASSWORD",
        "FLOWER_PASSWORD",
    ):
        assert len(values[key]) >= 20, key
    assert len(base64.urlsafe_b64decode(values["AIRFLOW_FERNET_KEY"])) == 32
    assert values["AIRFLOW_UID"] == "1000"
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600


def test_never_overwrites_an_existing_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("POSTGRES_PASSWORD=mine\n")
    assert not envfile.write_env_file(env_file, 1000)
    assert env_file.read_text() == "POSTGRES_PASSWORD=mine\n"


def test_two_stacks_get_different_secrets(tmp_path):
    envfile.write_env_file(tmp_path / "a", 1000)
    envfile.write_env_file(tmp_path / "b", 1000)
    a, b = envfile.read_env_file(tmp_path / "a"), envfile.read_env_file(tmp_path / "b")
    assert a["AIRFLOW_FERNET_KEY"] != b["AIRFLOW_FERNET_KEY"]
    assert a["POSTGRES_PASSWORD"] != b["POSTGRES_PASSWORD"]


def test_main_reports_and_prepares_logs_dir(tmp_path, capsys):
    args = ["--env-file", str(tmp_path / ".env"), "--logs-dir", str(tmp_path / "logs")]
    assert envfile.main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert envfile.main(args) == 0
    assert "left unchanged" in capsys.readouterr().out
    assert (tmp_path / "logs").is_dir()


def test_fernet_rotation_edits_keep_other_lines_and_the_private_mode(tmp_path):
    env_file = tmp_path / ".env"
    envfile.write_env_file(env_file, 1000)
    before = envfile.read_env_file(env_file)
    envfile.fernet_add(env_file)
    during = envfile.read_env_file(env_file)
    new, old = during["AIRFLOW_FERNET_KEY"].split(",")
    assert old == before["AIRFLOW_FERNET_KEY"] and new != old
    assert {k: v for k, v in during.items() if k != "AIRFLOW_FERNET_KEY"} == {
        k: v for k, v in before.items() if k != "AIRFLOW_FERNET_KEY"
    }
    envfile.fernet_drop(env_file)
    assert envfile.read_env_file(env_file)["AIRFLOW_FERNET_KEY"] == new
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600


def test_a_second_rotation_cannot_start_before_the_first_ends(tmp_path):
    env_file = tmp_path / ".env"
    envfile.write_env_file(env_file, 1000)
    envfile.fernet_add(env_file)
    import pytest

    with pytest.raises(SystemExit, match="a rotation starts from exactly one key"):
        envfile.fernet_add(env_file)
