"""Your Airflow options file reaches every Airflow container (airflow_stack.host.overrides); the
compose rendering is exercised by tests/e2e/test_dag_authoring.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_stack.host import overrides


def test_names_are_read_and_malformed_lines_refused_with_their_line(tmp_path: Path):
    path = tmp_path / "airflow.env"
    path.write_text("# mine\nAIRFLOW__CORE__PARALLELISM=64\n\nexport MY_VAR=1\n")
    assert overrides.read_names(path) == ["AIRFLOW__CORE__PARALLELISM", "MY_VAR"]
    path.write_text("AIRFLOW__core__parallelism=64\njust words\n")
    with pytest.raises(overrides.Refused) as refused:
        overrides.read_names(path)
    assert f"{path}:1: AIRFLOW__core__parallelism: Airflow reads AIRFLOW__SECTION__KEY in upper case only" in str(
        refused.value
    )
    assert f"{path}:2: not NAME=value" in str(refused.value)


def test_an_option_masked_in_some_services_is_refused_naming_them(tmp_path: Path, monkeypatch):
    def fake_config(command, **kwargs):
        probe = Path(kwargs["env"]["AIRFLOW_ENV_FILE"]).read_text().splitlines()[0].split("=", 1)[1]
        services = {
            "scheduler": {"image": "a", "environment": {"X": probe, "AIRFLOW__CORE__FERNET_KEY": "wired"}},
            "worker": {"image": "a", "environment": {"X": probe, "AIRFLOW__CORE__FERNET_KEY": "wired"}},
            "postgres": {"image": "pg", "environment": {}},
        }
        return type("Result", (), {"returncode": 0, "stdout": json.dumps({"services": services}), "stderr": ""})

    monkeypatch.setattr(overrides.subprocess, "run", fake_config)
    path = tmp_path / "airflow.env"
    path.write_text("X=1\n")
    assert overrides.check(path, ["docker", "compose"]).startswith("airflow options: 1 from")
    path.write_text("X=1\nAIRFLOW__CORE__FERNET_KEY=mine\n")
    expected = "AIRFLOW__CORE__FERNET_KEY: not in scheduler, worker\n  fix"
    with pytest.raises(overrides.Refused, match=expected) as refused:
        overrides.check(path, ["docker", "compose"])
    assert "  X:" not in str(refused.value)


def test_the_template_is_written_once(tmp_path: Path):
    path = tmp_path / "airflow.env"
    assert overrides.write_template(path)
    path.write_text("MINE=1\n")
    assert not overrides.write_template(path)
    assert path.read_text() == "MINE=1\n"
