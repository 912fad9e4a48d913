"""Dispatch: pass-through to `airflow`, refusals rendered with the fix."""

import pytest

from airflow_stack import cli


@pytest.fixture
def exec_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "exec_command", calls.append)
    return calls


def test_unknown_first_word_passes_through_to_airflow(exec_calls):
    assert cli.main(["dags", "list", "-o", "json"]) == 0
    assert exec_calls == [["airflow", "dags", "list", "-o", "json"]]


def test_unknown_component_is_refused_with_the_list(capsys, exec_calls):
    assert cli.main(["run", "webserver"]) == 1
    err = capsys.readouterr().err
    assert "unknown component 'webserver'" in err
    assert "api-server" in err and "dag-processor" in err
    assert exec_calls == []


def test_run_refuses_before_exec_when_a_secret_is_missing(monkeypatch, capsys, exec_calls):
    for name in list(__import__("os").environ):
        if name.startswith("AIRFLOW__"):
            monkeypatch.delenv(name)
    assert cli.main(["run", "scheduler"]) == 1
    err = capsys.readouterr().err
    assert "AIRFLOW__CORE__FERNET_KEY" in err and "fix:" in err
    assert exec_calls == []


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "dag-sync" in out and "healthcheck" in out


@pytest.mark.parametrize(
    "argv",
    [["groom-logs", "--onec"], ["monitor", "--once", "extra"], ["dag-sync", "rollbak"], ["rotate-fernet-key", "redo"]],
)
def test_typos_in_flags_and_words_are_refused_with_the_usage(argv, capsys, exec_calls):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv, env={})
    assert exited.value.code == 2
    assert "usage: airflow-stack" in capsys.readouterr().err
    assert exec_calls == []


def test_an_unknown_stack_variable_stops_every_command_before_it_runs(capsys, exec_calls):
    assert cli.main(["run", "scheduler"], env={"AIRFLOW_STACK_WAIT_TIMEOT": "5"}) == 1
    err = capsys.readouterr().err
    assert "AIRFLOW_STACK_WAIT_TIMEOT is not a setting" in err and "did you mean AIRFLOW_STACK_WAIT_TIMEOUT?" in err
    assert exec_calls == []


def test_the_components_command_lists_every_component_with_its_summary(capsys):
    assert cli.main(["components"], env={}) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("db-migrate", "dag-sync", "monitor", "log-groomer", "worker"))
