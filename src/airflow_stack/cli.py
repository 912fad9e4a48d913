"""The image's entrypoint, `airflow-stack`: one argparse command line.

    airflow-stack run COMPONENT [ARGS...]   check its settings and dependencies, then run it
    airflow-stack healthcheck COMPONENT     the container health probe
    airflow-stack components                list the components
    airflow-stack settings                  list every setting with its current value (secrets masked)
    airflow-stack bootstrap                 apply the connections/variables/pools file (= run bootstrap)
    airflow-stack bootstrap export [--include-secrets]   the database's objects in that file's format
    airflow-stack rotate-fernet-key STEP    record | reencrypt (used by make rotate-fernet-key)
    airflow-stack dag-sync [--once | status | rollback [VERSION] | resume]
    airflow-stack monitor [--once]          one sample with --once; else = run monitor
    airflow-stack groom-logs [--once]       one pass with --once; else = run log-groomer
    airflow-stack dags-check [FOLDER]       import every DAG of FOLDER; fail on errors (make dags-check)
    airflow-stack dags-test [FOLDER] [ARGS] your DAG tests with pytest (make dags-test, dag-tests image)
    airflow-stack upgrade-check --database NAME   migrate a copy of the database, then dags-check
    airflow-stack ARGS...                   anything else: exec `airflow ARGS...`

Before any command, `*_FILE` twins are read, passwords put into their URLs, and the Airflow
options the stack derives are set (S3 task logs, the DAG folder's refresh or the release bundle); an unknown
`AIRFLOW_STACK_*` variable is refused. Unknown flags are refused with the usage.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path

from airflow_stack.checks import healthcheck, preflight
from airflow_stack.core import components, privileges, settings
from airflow_stack.core.errors import StackError, log
from airflow_stack.dags import parsing, releases
from airflow_stack.ops import s3logs


def exec_command(argv: list[str]) -> None:
    """Replace this process so that signals from the init process reach the component."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def airflow_in_process(argv: list[str]) -> int:
    """Airflow's command line in this process, with what it has imported already."""
    from airflow.__main__ import main as airflow_main

    sys.argv = argv
    return airflow_main() or 0


def run_importing_while_waiting(
    component: components.Component, extra: list[str], env: MutableMapping[str, str]
) -> int:
    """Preflight's waits in a thread while this one imports the component's modules, then its
    Airflow command in this process: the imports overlap the wait instead of following it."""
    preflight.check_settings(component, env)  # a wrong setting is refused before anything is imported
    failed: list[BaseException] = []
    waited: list[float] = []

    def wait() -> None:
        started = time.monotonic()
        try:
            preflight.check_dependencies(component, env)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
            failed.append(exc)
        waited.append(time.monotonic() - started)

    waiting = threading.Thread(target=wait, name="preflight", daemon=True)
    waiting.start()
    started = time.monotonic()
    import_error: Exception | None = None
    try:
        for module in component.imports_while_waiting:
            importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - raised below, unless the checks refused first
        import_error = exc
    imported = time.monotonic() - started
    waiting.join()
    if failed:  # the refusal says more than an import error it may have caused
        raise failed[0] from None
    if import_error:
        raise import_error
    preflight.check_remote_logs(component, env)
    components.install(component, env)
    argv = [*components.argv(component, env), *extra]
    log(
        f"starting {component.name}: {' '.join(argv)} (in this process; its modules imported in "
        f"{imported:.1f} s beside the checks' {waited[0]:.1f} s)"
    )
    return airflow_in_process(argv)


def run(name: str, extra: list[str], env: MutableMapping[str, str]) -> int:
    """Preflight, then the component's in-process job or its command (exec)."""
    component = components.get(name)
    if component.imports_while_waiting:
        return run_importing_while_waiting(component, extra, env)
    preflight.run(component, env)
    if component.job:
        return components.call(component.job, env) or 0
    if component.prepare_env:
        component.prepare_env(env)
    argv = (*components.argv(component, env), *extra)
    log(f"starting {component.name}: {' '.join(argv)}")
    exec_command(list(argv))
    return 0


# -- the commands: each takes the parsed arguments and the environment, returns the exit code ------
def cmd_run(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    return run(args.component, args.extra, env)


def cmd_healthcheck(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    return healthcheck.main(args.component, env)


def cmd_components(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    for component in components.COMPONENTS.values():
        print(f"{component.name:14} {component.summary}")
    return 0


def cmd_bootstrap(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    if args.action == "export":
        from airflow_stack.jobs import bootstrap

        # The file goes to the original stdout; whatever Airflow logs while loading goes to stderr.
        sys.stdout.flush()
        out = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        with out:
            out.write(bootstrap.export(include_secrets=args.include_secrets))
        return 0
    return run("bootstrap", [], env)


def cmd_dags_check(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    from airflow_stack.dags import dagcheck

    return dagcheck.main(args.folder)


def cmd_upgrade_check(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    from airflow_stack.jobs import upgrade_check

    return upgrade_check.main(args.database, env)


def cmd_dags_test(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    from airflow_stack.dags import dagtest

    return dagtest.main(args.folder, args.pytest_args, env)


def cmd_rotate_fernet_key(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    from airflow_stack.jobs import rotation

    rotation.main(args.step, env)
    return 0


def cmd_dag_sync(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    from airflow_stack.dags import dagsync

    if args.action == "status":
        return dagsync.print_status(env)
    if args.action == "rollback":
        log(f"dag-sync: {dagsync.rollback(releases.store_of(env), args.version)}")
        return 0
    if args.action == "resume":
        log(f"dag-sync: {dagsync.resume(releases.store_of(env))}")
        return 0
    return run("dag-sync", [], env) if not args.once else dagsync.serve(env, once=True)


def cmd_monitor(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    from airflow_stack.ops import monitor

    return monitor.serve(env, once=True) if args.once else run("monitor", [], env)


def cmd_groom_logs(args: argparse.Namespace, env: MutableMapping[str, str]) -> int:
    from airflow_stack.ops import loggroom

    return loggroom.serve(env, once=True) if args.once else run("log-groomer", [], env)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="airflow-stack",
        description=__doc__.split("\n\n")[0],
        epilog="Any other first word runs `airflow` with the same arguments.",
    )
    commands = top.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help)
        sub.set_defaults(handler=handler)
        return sub

    run_ = command("run", cmd_run, "check, then run a component")
    run_.add_argument("component", metavar="COMPONENT", help=", ".join(components.COMPONENTS))
    run_.add_argument("extra", nargs=argparse.REMAINDER, help="passed on to the component's command")
    command("healthcheck", cmd_healthcheck, "the container health probe").add_argument("component", metavar="COMPONENT")
    command("components", cmd_components, "list the components")
    command("settings", None, "list every setting with its current value (secrets masked)")
    boot = command("bootstrap", cmd_bootstrap, "apply the connections, variables and pools file")
    boot_actions = boot.add_subparsers(dest="action", metavar="ACTION")
    export = boot_actions.add_parser("export", help="print the database's connections, variables and pools as a file")
    export.add_argument(
        "--include-secrets", action="store_true", help="write passwords and secret values in clear, not as ${...}"
    )
    check = command("dags-check", cmd_dags_check, "import every DAG of a folder and report problems")
    check.add_argument("folder", nargs="?", type=Path, default=Path("/opt/airflow/dags"))
    upgrade = command("upgrade-check", cmd_upgrade_check, "this image's migration and dags-check on a database copy")
    upgrade.add_argument("--database", required=True, help="the copy's database name (make upgrade-check makes it)")
    dag_tests = command("dags-test", cmd_dags_test, "run the DAG repository's tests with pytest")
    dag_tests.add_argument("folder", nargs="?", type=Path, default=Path("/opt/airflow/dag-tests"))
    dag_tests.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest")
    rotate = command("rotate-fernet-key", cmd_rotate_fernet_key, "the in-image steps of make rotate-fernet-key")
    rotate.add_argument("step", choices=["record", "reencrypt"])
    sync = command("dag-sync", cmd_dag_sync, "DAG releases: serve, one poll, status, rollback, resume")
    sync.add_argument("--once", action="store_true", help="one poll; exit 1 if it failed")
    actions = sync.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("status", help="print the status record (JSON)")
    rollback = actions.add_parser("rollback", help="activate VERSION (default: the one before) and pin it")
    rollback.add_argument("version", nargs="?")
    actions.add_parser("resume", help="unpin: follow the source again")
    monitor = command("monitor", cmd_monitor, "queue depth, desired workers, heartbeats")
    monitor.add_argument("--once", action="store_true", help="one sample; exit 1 if it failed")
    groom = command("groom-logs", cmd_groom_logs, "delete local logs past their retention")
    groom.add_argument("--once", action="store_true", help="one pass")
    top.set_defaults(command_names=frozenset(commands.choices))
    return top


def drop_root(env: MutableMapping[str, str], *, keep_switch: bool) -> None:
    """Started as root with AIRFLOW_STACK_RUN_AS_UID set (dag-sync), turn into that uid. Only
    dag-sync's service keeps the switch its validation sandbox needs (core.privileges)."""
    if os.geteuid() == 0 and (uid := settings.RUN_AS_UID.read(env)):
        privileges.drop(uid, keep_switch=keep_switch)
        log(f"running as uid {uid}" + (" (DAG validation runs as its own uid)" if keep_switch else ""))


def keeps_switch(args: argparse.Namespace) -> bool:
    """Whether the command runs a component that starts processes as another uid."""
    if args.handler is cmd_run:
        return components.get(args.component).switches_uid
    return args.handler is cmd_dag_sync and args.action is None


def prepare_environment(env: MutableMapping[str, str]) -> None:
    """What every command needs first: `*_FILE` twins, passwords in URLs, derived Airflow options."""
    settings.check_known(env)
    settings.resolve_file_twins(env)
    settings.inject_passwords(env)
    s3logs.configure(env)
    parsing.configure_airflow(env)


def main(argv: list[str] | None = None, env: MutableMapping[str, str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    top = parser()
    known = {"-h", "--help", *top.get_default("command_names")}
    try:
        if argv and argv[0] not in known:
            prepare_environment(env)
            drop_root(env, keep_switch=False)
            exec_command(["airflow", *argv])
            return 0
        args = top.parse_args(argv)
        if args.handler is None:  # `settings`: shows bad values instead of refusing them
            from_files = frozenset(settings.resolve_file_twins(env))
            drop_root(env, keep_switch=False)
            print(settings.table(env, from_files))
            return 0
        # Secret files are read first, as docker-library's entrypoints read them before dropping root.
        prepare_environment(env)
        drop_root(env, keep_switch=keeps_switch(args))
        return args.handler(args, env)
    except StackError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
