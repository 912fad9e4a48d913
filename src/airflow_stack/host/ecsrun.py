"""The host side of `make -C deploy/aws db-migrate | bootstrap | airflow`: one-off ECS tasks of
the apps stack, and the database snapshot taken before a migration. Standard library only, like
host.awsdeploy, whose `aws` CLI call it uses (`AWS` may name another command).

    python3 -m airflow_stack.host.ecsrun run STACK NAME OUTPUT_KEY [--timeout S] [-- COMMAND...]
        start the task definition that STACK's output OUTPUT_KEY names, in the stack's cluster and
        network; print each change of its status with the time since the start; wait until it
        stops, at most --timeout seconds (3600: a migration of a big database takes long); refuse
        with ECS's stopped reason, the exit code and the log stream unless it exited 0. COMMAND
        replaces the container's command (`make airflow ARGS="dags list"` runs `airflow dags list`).
    python3 -m airflow_stack.host.ecsrun snapshot DB_INSTANCE [--timeout S]
        take a manual RDS snapshot DB_INSTANCE-pre-migrate-YYYYMMDD-HHMMSS and wait until it is
        available (at most --timeout, 3600 s); print its name, for the rollback runbook.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from airflow_stack.core.errors import StackError
from airflow_stack.host.awsdeploy import aws, stack_outputs

POLL = 15.0  # seconds between two looks at a task or a snapshot


def _json(*args: str) -> object:
    return json.loads(aws(*args, "--output", "json"))


def run_task(
    stack: str,
    name: str,
    output_key: str,
    command: Sequence[str] = (),
    timeout: float = 3600,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = print,
) -> None:
    outputs = stack_outputs(stack)
    for key in ("ClusterName", output_key, "TaskNetworkConfiguration", "LogGroupName"):
        if key not in outputs:
            raise StackError(
                f"the stack {stack} has no output {key}", fix="deploy it first: make -C deploy/aws ENV=... apps"
            )
    cluster = outputs["ClusterName"]
    args = [
        "ecs", "run-task", "--cluster", cluster, "--launch-type", "FARGATE",
        "--task-definition", outputs[output_key],
        "--network-configuration", outputs["TaskNetworkConfiguration"],
    ]  # fmt: skip
    if command:
        args += ["--overrides", json.dumps({"containerOverrides": [{"name": name, "command": list(command)}]})]
    started = _json(*args)
    failures = started.get("failures") or []
    if failures or not started.get("tasks"):
        reasons = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')} {f.get('detail', '')}".strip() for f in failures)
        raise StackError(
            f"ECS did not start the {name} task: {reasons or 'no task returned'}",
            fix="check the cluster's capacity and the task definition",
        )
    task = started["tasks"][0]["taskArn"]
    log_stream = f"{name}/{name}/{task.rsplit('/', 1)[-1]}"
    where = f"log group {outputs['LogGroupName']}, stream {log_stream}"
    say(f"{name}: started {task} ({where}); waiting up to {timeout:g} s")
    begin = clock()
    last = None
    while True:
        described = _json("ecs", "describe-tasks", "--cluster", cluster, "--tasks", task)["tasks"][0]
        status = described.get("lastStatus", "?")
        if status != last:
            say(f"{name}: {status} after {clock() - begin:.0f} s")
            last = status
        if status == "STOPPED":
            break
        if clock() - begin > timeout:
            raise StackError(
                f"the {name} task is still {status} after {timeout:g} s; it goes on running: {task}",
                fix=f"follow its log ({where}), or wait with a longer TIMEOUT=",
            )
        sleep(POLL)
    container = next((c for c in described.get("containers", []) if c.get("name") == name), {})
    code = container.get("exitCode")
    if code != 0:
        reason = described.get("stoppedReason", "no reason given")
        detail = container.get("reason")
        raise StackError(
            f"the {name} task stopped with exit code {code if code is not None else '(none: it never ran)'}: "
            f"{reason}{f' ({detail})' if detail else ''}",
            fix=f"read its log: {where}",
        )
    say(f"{name}: done in {clock() - begin:.0f} s")


def snapshot(
    instance: str,
    timeout: float = 3600,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = print,
) -> str:
    name = f"{instance}-pre-migrate-{now():%Y%m%d-%H%M%S}"
    aws("rds", "create-db-snapshot", "--db-instance-identifier", instance, "--db-snapshot-identifier", name)
    say(f"snapshot: {name} started; waiting until it is available (at most {timeout:g} s)")
    begin = clock()
    while True:
        found = _json("rds", "describe-db-snapshots", "--db-snapshot-identifier", name)["DBSnapshots"][0]
        status = found.get("Status", "?")
        if status == "available":
            say(f"snapshot: {name} available after {clock() - begin:.0f} s")
            return name
        if status in ("failed", "error"):
            raise StackError(f"the snapshot {name} {status}", fix="see the RDS console's events of the instance")
        if clock() - begin > timeout:
            raise StackError(
                f"the snapshot {name} is still {status} after {timeout:g} s; the migration did not start",
                fix="wait for it, then run make -C deploy/aws db-migrate again (or SNAPSHOT=false to skip it)",
            )
        sleep(POLL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ecsrun", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("stack")
    run.add_argument("name")
    run.add_argument("output_key")
    run.add_argument("--timeout", type=float, default=3600)
    run.add_argument("task_command", nargs="*", metavar="COMMAND")
    snap = commands.add_parser("snapshot")
    snap.add_argument("instance")
    snap.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    try:
        if args.command == "snapshot":
            snapshot(args.instance, args.timeout)
        else:
            run_task(args.stack, args.name, args.output_key, args.task_command, args.timeout)
        return 0
    except StackError as exc:
        print(exc.render(), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
