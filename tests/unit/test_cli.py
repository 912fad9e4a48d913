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


# A component that imports while its checks wait: the wait ends only once the import has run, so
# the two can only both finish if they overlap.
PROBE_MODULE = "import overlap_test_flag\noverlap_test_flag.imported.set()\n"


@pytest.fixture
def overlapping(monkeypatch, tmp_path):
    import dataclasses
    import sys
    import threading
    import types

    from airflow_stack.checks import preflight
    from airflow_stack.core import components

    flag = types.SimpleNamespace(imported=threading.Event(), calls=[])
    monkeypatch.setitem(sys.modules, "overlap_test_flag", flag)
    (tmp_path / "overlap_test_probe.py").write_text(PROBE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "overlap_test_probe", raising=False)
    worker = dataclasses.replace(components.get("worker"), imports_while_waiting=("overlap_test_probe",))
    monkeypatch.setattr(preflight, "check_settings", lambda component, env: flag.calls.append("settings"))
    monkeypatch.setattr(preflight, "check_remote_logs", lambda component, env: flag.calls.append("remote logs"))
    monkeypatch.setattr(cli, "airflow_in_process", lambda argv: flag.calls.append(argv) or 0)
    flag.component = worker
    return flag


def test_a_worker_imports_while_its_checks_wait_then_runs_airflow_in_this_process(monkeypatch, overlapping):
    from airflow_stack.checks import preflight

    def wait_for_the_import(component, env):
        overlapping.calls.append("dependencies")
        assert overlapping.imported.wait(timeout=20), "the import did not run while the checks waited"

    monkeypatch.setattr(preflight, "check_dependencies", wait_for_the_import)
    assert cli.run_importing_while_waiting(overlapping.component, ["--queues", "default"], {}) == 0
    assert overlapping.calls == [
        "settings",
        "dependencies",
        "remote logs",
        ["airflow", "celery", "worker", "--queues", "default"],
    ]


def test_a_refusal_while_waiting_stops_it_before_airflow_runs(monkeypatch, overlapping):
    from airflow_stack.checks import preflight
    from airflow_stack.core.errors import StackError

    def refuse(component, env):
        raise StackError("AIRFLOW__CORE__FERNET_KEY differs from the api-server's", fix="give every container the same")

    monkeypatch.setattr(preflight, "check_dependencies", refuse)
    with pytest.raises(StackError, match="differs from the api-server's"):
        cli.run_importing_while_waiting(overlapping.component, [], {})
    assert overlapping.calls == ["settings"]


def test_a_refusal_wins_over_the_import_error_it_may_cause(monkeypatch, overlapping):
    import dataclasses

    from airflow_stack.checks import preflight
    from airflow_stack.core.errors import StackError

    def refuse(component, env):
        raise StackError("the api-server at http://api-server:8080 did not answer", fix="start it")

    monkeypatch.setattr(preflight, "check_dependencies", refuse)
    broken = dataclasses.replace(overlapping.component, imports_while_waiting=("no_such_module_anywhere",))
    with pytest.raises(StackError, match="did not answer"):
        cli.run_importing_while_waiting(broken, [], {})


def test_a_component_that_imports_while_waiting_runs_a_plain_airflow_command():
    # Its command runs through Airflow's own command line in this process: nothing may wrap it or
    # prepare its environment first, as the exec'd commands of other components can.
    from airflow_stack.core import components

    importing = [c for c in components.COMPONENTS.values() if c.imports_while_waiting]
    assert [c.name for c in importing] == ["scheduler", "worker"]
    # What is installed before the command runs needs a command that runs in this process.
    installing = [c for c in components.COMPONENTS.values() if c.installs]
    assert {c.name for c in installing} == {"scheduler", "dag-processor", "triggerer", "worker"}
    assert all(c.imports_while_waiting or c.guards_log_files for c in installing)
    for component in importing:
        assert components.argv(component, {})[0] == "airflow", component.name
        assert not component.guards_log_files and component.prepare_env is None and not component.job
