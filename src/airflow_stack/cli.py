"""Command-line dispatch of the image's entrypoint, `airflow-stack`.

    airflow-stack run COMPONENT [ARGS...]   preflight, then exec the component
    airflow-stack healthcheck COMPONENT     the container health probe
    airflow-stack bootstrap                 apply the connections/variables/pools file (= run bootstrap)
    airflow-stack rotate-fernet-key STEP    record | reencrypt (used by make rotate-fernet-key)
    airflow-stack groom-logs [--once]       delete local logs older than the retention
    airflow-stack dag-sync [--once|status|rollback [VERSION]|resume]
                                            pull DAG releases from the artifact source (dagsync)
    airflow-stack monitor [--once]          queue depth, desired workers, heartbeats (monitor)
    airflow-stack components                list the components
    airflow-stack ARGS...                   anything else: exec `airflow ARGS...`
"""

from __future__ import annotations

import os
import sys

from airflow_stack.checks import healthcheck, preflight
from airflow_stack.core import components, settings
from airflow_stack.dags import releases
from airflow_stack.jobs import bootstrap, db_migrate, rotation
from airflow_stack.ops import loggroom, s3logs
from airflow_stack.core.errors import StackError, log

USAGE = __doc__.split("\n\n", 1)[1]


def exec_command(argv: list[str]) -> None:
    """Replace this process so that signals from the init process reach the component."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def run(name: str, extra: list[str]) -> None:
    component = components.get(name)
    preflight.run(component)
    one_shot_jobs = {"init": db_migrate.run, "bootstrap": bootstrap.run}
    if component.name in one_shot_jobs:
        one_shot_jobs[component.name](os.environ)
        return
    if component.prepare_env:
        component.prepare_env(os.environ)
    argv = (*components.argv(component, os.environ), *extra)
    log(f"starting {component.name}: {' '.join(argv)}")
    exec_command(list(argv))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings.resolve_file_twins(os.environ)
        settings.inject_passwords(os.environ)
        s3logs.configure(os.environ)
        releases.configure_airflow(os.environ)
        if not args or args[0] in ("-h", "--help", "help"):
            print(USAGE)
            return 0
        if args[0] == "run":
            if len(args) < 2:
                raise StackError("`run` needs a component", fix=f"use one of: {', '.join(components.COMPONENTS)}")
            run(args[1], args[2:])
            return 0
        if args[0] == "bootstrap":
            run("bootstrap", args[1:])
            return 0
        if args[0] == "groom-logs":
            loggroom.main(args[1:], os.environ)
            return 0
        if args[0] == "dag-sync":
            from airflow_stack.dags import dagsync

            return dagsync.main(args[1:], os.environ)
        if args[0] == "monitor":
            from airflow_stack.ops import monitor

            return monitor.main(args[1:])
        if args[0] == "healthcheck":
            if len(args) != 2:
                raise StackError("`healthcheck` takes exactly one component")
            return healthcheck.main(args[1])
        if args[0] == "rotate-fernet-key":
            if len(args) != 2:
                raise StackError("`rotate-fernet-key` takes one step", fix="use `record` or `reencrypt`")
            rotation.main(args[1], os.environ)
            return 0
        if args[0] == "components":
            for component in components.COMPONENTS.values():
                print(f"{component.name:14} {' '.join(component.argv) or '(one-shot job)'}")
            return 0
        exec_command(["airflow", *args])
    except StackError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    return 0
