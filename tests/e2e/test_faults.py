"""Faults while a DAG run has tasks in flight (mostly fault_fanout: 32 tasks of 10 s, 16 at a
time on one worker, the rest queued in Redis; `make test-faults`). Each case asserts that every
task instance ends in success and the run completes (the out-of-memory task excepted: it must
fail); retries are allowed only where a task's worker died (its heartbeat stops, the scheduler
fails it after `task_instance_heartbeat_timeout`, and it is retried). Each case's recovery is
written to test-artifacts/fault-recovery.json and printed (`first task done` and `run done`
count from the fault).

The settings that make this true are in docs/operations.md "Faults and recovery". Only the two
SIGKILL cases bound a time, as the product promises one: a killed worker's tasks are back
within SIGKILL_BOUND, those it ran after the heartbeat timeout, those it had taken and not
started when the monitor returns their messages to the queue (airflow_stack.ops.requeue)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from airflow_stack.host import stackwait

from .conftest import ARTIFACTS, PROJECT, Stack, docker, hostname_of, poll

DAG = "fault_fanout"
RESULTS: dict[str, dict] = {}


def containers(stack: Stack, service: str) -> list[str]:
    return stack.run("ps", "-q", service).stdout.split()


def kill_main_process(stack: Stack, service: str, container: str | None = None) -> None:
    """SIGKILL the component (tini's child), as an out-of-memory kill would: the container
    exits and its restart policy starts it again."""
    target = container or containers(stack, service)[0]
    docker("exec", target, "sh", "-c", "kill -KILL $(cat /proc/1/task/1/children)")


def safe(probe: Callable[[], object]) -> Callable[[], object]:
    """A probe that answers None while the api-server itself is down."""

    def guarded():
        try:
            return probe()
        except (httpx.HTTPError, KeyError, ValueError):
            return None

    return guarded


def task_instances(api: httpx.Client, run_id: str, dag: str = DAG) -> list[dict]:
    response = api.get(f"/dags/{dag}/dagRuns/{run_id}/taskInstances", params={"limit": 200})
    return response.json()["task_instances"]


def start_run(
    stack: Stack, api: httpx.Client, tasks: int = 32, running: int = 8, dag: str = DAG, state: str = "running"
) -> str:
    """Start a run of `dag` and wait until `running` of its task instances are in `state`."""
    assert api.patch(f"/dags/{dag}", json={"is_paused": False}).status_code == 200
    created = api.post(f"/dags/{dag}/dagRuns", json={"logical_date": None, "conf": {"tasks": tasks, "seconds": 10}})
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]
    poll(
        f"{running} tasks {state}",
        lambda: sum(t["state"] == state for t in task_instances(api, run_id, dag)) >= running,
        120,
        lambda: stack.logs("scheduler", "worker", "triggerer"),
    )
    return run_id


def parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def finish(
    stack: Stack, api: httpx.Client, run_id: str, case: str, fault_at: float, timeout: float = 300, dag: str = DAG
) -> list[dict]:
    """Wait for the run; assert that it and every task instance succeeded; record the recovery."""

    def done():
        state = api.get(f"/dags/{dag}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    diagnostics = lambda: stack.logs("scheduler", "worker", "triggerer", "api-server")  # noqa: E731
    state = poll(f"{case}: run finished", safe(done), timeout, diagnostics)
    tis = task_instances(api, run_id, dag)
    failed = {f"{t['task_id']}[{t['map_index']}]": t["state"] for t in tis if t["state"] != "success"}
    assert state == "success" and not failed, (state, failed, stack.logs("scheduler", "worker", "triggerer", tail=120))
    work = [t for t in tis if t["task_id"] in ("work", "wait")]
    ends = sorted(parse(t["end_date"]) - fault_at for t in work if parse(t["end_date"]) > fault_at)
    run = api.get(f"/dags/{dag}/dagRuns/{run_id}").json()
    RESULTS[case] = {
        "first_task_done_after_fault_s": round(ends[0], 1) if ends else None,
        "run_done_after_fault_s": round(parse(run["end_date"]) - fault_at, 1),
        "tasks": len(work),
        "tasks_retried": sum(t["try_number"] > 1 for t in work),
    }
    write_results()
    print(f"\n{case}: {RESULTS[case]}")
    return tis


def write_results() -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "fault-recovery.json").write_text(json.dumps(RESULTS, indent=2) + "\n")


def wait_healthy(stack: Stack) -> None:
    assert stackwait.wait(stack.compose, 300, stackwait.ONE_SHOT_SERVICES, out=None), stack.logs(tail=80)


@pytest.fixture
def api(stack: Stack):
    wait_healthy(stack)
    with stack.api() as client:
        yield client
    wait_healthy(stack)


# A killed worker's tasks run again within: the heartbeat timeout (120 s) and the scheduler's
# check (10 s) for those it ran; the monitor's requeue (60 s unheld over two samples 30 s apart:
# at most 90 s) for those it had taken and not started; plus the task itself (10 s) and margin.
SIGKILL_BOUND = 300


def test_a_worker_killed_with_sigkill_loses_no_task(stack: Stack, api: httpx.Client):
    run_id = start_run(stack, api)
    fault_at = time.time()
    kill_main_process(stack, "worker")
    tis = finish(stack, api, run_id, "worker SIGKILL", fault_at, timeout=SIGKILL_BOUND)
    # Tasks that ran on the killed worker were failed by the heartbeat timeout and retried.
    assert RESULTS["worker SIGKILL"]["tasks_retried"] >= 1, tis
    assert not started_twice(stack, fault_at), stack.logs("monitor", "worker")


def redis_cli(stack: Stack, *args: str) -> str:
    password = stack.env["REDIS_PASSWORD"]
    return stack.run("exec", "-T", "redis", "redis-cli", "-a", password, "--no-auth-warning", *args).stdout.strip()


def log_lines(stack: Stack, service: str, since: float, needle: str) -> list[str]:
    """The service's log lines since `since` (a time.time()) that contain `needle`."""
    stamp = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    output = stack.run("logs", "--no-color", "--since", stamp, service, check=False).stdout
    return [line for line in output.splitlines() if needle in line]


def started_twice(stack: Stack, since: float) -> list[str]:
    """Worker log lines of a message delivered while its task already ran (Airflow refused the start)."""
    return log_lines(stack, "worker", since, "already running elsewhere")


def returned_by_monitor(stack: Stack, since: float) -> list[str]:
    """The monitor's log lines of messages it returned to their queue (a dead worker's)."""
    return log_lines(stack, "monitor", since, "back in their queue")


def test_a_killed_workers_unstarted_task_is_back_within_three_minutes(stack: Stack, api: httpx.Client):
    """A worker that runs one task and holds a second, not started (prefetch 2), is killed. The
    held task runs on another worker within 3 minutes as the same try (its message went back to
    the queue); the running one is retried after the heartbeat timeout, never re-sent."""
    name = f"{PROJECT}-one-slot-worker"
    stack.run("stop", "worker")
    stack.run(
        "run", "-d", "--no-deps", "--name", name,
        "-e", "AIRFLOW__CELERY__WORKER_CONCURRENCY=1", "-e", "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER=2",
        "worker",
    )  # fmt: skip
    try:
        hostname = hostname_of(name)
        run_id = start_run(stack, api, tasks=2, running=1)

        def one_running_one_held():
            work = {t["map_index"]: t for t in task_instances(api, run_id) if t["task_id"] == "work"}
            states = sorted((t["state"], t["hostname"]) for t in work.values())
            held = redis_cli(stack, "HLEN", "unacked") == "2"
            return work if held and states == [("queued", ""), ("running", hostname)] else None

        work = poll("one task running and one held", one_running_one_held, 60, lambda: docker("logs", name).stdout)
        unstarted = next(i for i, t in work.items() if t["state"] == "queued")
        fault_at = time.time()
        docker("kill", "-s", "KILL", name)
    finally:
        docker("rm", "-f", name, check=False)
        stack.run("start", "worker")
    case = "worker SIGKILL holding an unstarted task"
    tis = finish(stack, api, run_id, case, fault_at, timeout=SIGKILL_BOUND)
    by_index = {t["map_index"]: t for t in tis if t["task_id"] == "work"}
    returned, ran = by_index[unstarted], by_index[1 - unstarted]
    started_after = parse(returned["start_date"]) - fault_at
    RESULTS[case]["unstarted_task_started_after_fault_s"] = round(started_after, 1)
    write_results()
    print(f"the unstarted task started {started_after:.1f} s after the kill")
    monitor = stack.logs("monitor", tail=400)
    assert returned["try_number"] == 1 and started_after <= 180, (returned, monitor)
    assert f"back in their queue: {DAG}.work[{unstarted}] try 1" in monitor, monitor
    assert ran["try_number"] == 2, ran  # failed by the heartbeat timeout and retried, not re-sent
    assert not started_twice(stack, fault_at), stack.logs("worker")


SIGNAL_HANDLING = 2.0  # seconds in which messages already read from Redis are still dispatched


def received_around_warm_shutdown(log: str) -> tuple[float, list[float]] | None:
    """From a worker's log (docker's timestamps): when it logged its last warm shutdown (the
    container's log also holds its earlier runs, stopped by earlier tests), and when it logged
    each message it received; None when it never logged the signal."""
    stamps: list[float] = []
    shutdown = None
    for line in log.splitlines():
        stamp, _, text = line.partition(" ")
        if "Warm shutdown" in text:
            shutdown = parse(stamp[:26] + "+00:00")
        elif "] received" in text:
            stamps.append(parse(stamp[:26] + "+00:00"))
    return None if shutdown is None else (shutdown, stamps)


def test_a_worker_stopped_with_sigterm_drains_and_takes_no_new_task(stack: Stack, api: httpx.Client):
    """Scale-in: the stopped worker receives no message once its warm shutdown has begun (read
    from its own log, not from task start times: a task it received just before the signal is
    already the pool's and may start after it), finishes what it has, and nothing is retried."""
    stack.run("up", "-d", "--no-recreate", "--scale", "worker=2", "worker")
    wait_healthy(stack)
    draining = containers(stack, "worker")[0]
    hostname = hostname_of(draining)
    try:
        run_id = start_run(stack, api, tasks=48, running=24)
        fault_at = time.time()
        docker("stop", "-t", "120", draining)  # SIGTERM: Celery's warm shutdown
        tis = finish(stack, api, run_id, "worker SIGTERM (scale-in)", fault_at)
        logged = docker("logs", "--timestamps", draining)
        log = logged.stdout + logged.stderr
    finally:
        stack.run("up", "-d", "--scale", "worker=1", "worker")
    on_draining = [t for t in tis if t["hostname"] == hostname and t["task_id"] == "work"]
    assert on_draining, "the stopped worker ran no task of the run"
    received = received_around_warm_shutdown(log)
    assert received, f"no warm shutdown in the worker's log:\n{log[-4000:]}"
    shutdown, stamps = received
    assert [t for t in stamps if t < shutdown], f"no message received before the signal:\n{log[-4000:]}"
    # The loop pass that was running when the signal came still dispatches what it had read from
    # Redis; after that the worker consumes nothing. (Such a message runs, or goes back to the
    # queue when the worker closes its channel: nothing below is retried or lost.)
    late = [round(t - shutdown, 3) for t in stamps if t > shutdown + SIGNAL_HANDLING]
    assert not late, f"messages received this many seconds after the warm shutdown: {late}"
    assert all(t["try_number"] == 1 for t in tis), "a task was retried"
    assert not returned_by_monitor(stack, fault_at), stack.logs("monitor", "worker")


@pytest.mark.parametrize(
    ("case", "fault"),
    [
        ("Redis restart", lambda stack: stack.run("restart", "redis")),
        ("PostgreSQL restart", lambda stack: stack.run("restart", "postgres")),
        ("api-server restart", lambda stack: stack.run("restart", "api-server")),
        ("scheduler SIGKILL", lambda stack: kill_main_process(stack, "scheduler")),
    ],
    ids=["redis", "postgres", "api-server", "scheduler"],
)
def test_a_restart_mid_run_loses_no_task(stack: Stack, api: httpx.Client, case: str, fault):
    run_id = start_run(stack, api)
    fault_at = time.time()
    fault(stack)
    tis = finish(stack, api, run_id, case, fault_at)
    assert all(t["try_number"] == 1 for t in tis), f"{case}: a task was retried"
    # No worker died: the monitor returns nothing. (After a Redis restart Celery itself hands
    # the worker its running tasks' messages again; Airflow refuses each second start.)
    assert not returned_by_monitor(stack, fault_at), stack.logs("monitor", "worker")


def test_redis_losing_its_data_mid_run_loses_no_task(stack: Stack, api: httpx.Client):
    """Redis restarted with its volume emptied (a restart without its append-only file, a failover
    that lost the last writes): the messages waiting in the queue are gone. The running tasks
    finish; the monitor finds the queued tasks whose message is nowhere and hands them to the
    scheduler's stuck-in-queued check, which queues them again."""
    run_id = start_run(stack, api, running=16)
    waiting = int(redis_cli(stack, "LLEN", "default"))
    assert waiting > 0, "no message waiting in the queue: nothing for Redis to lose"
    fault_at = time.time()
    stack.run("stop", "redis")
    stack.run("run", "--rm", "--no-deps", "-T", "--entrypoint", "sh", "redis", "-c", "rm -rf /data/*")
    stack.run("start", "redis")
    assert redis_cli(stack, "LLEN", "default") == "0", "Redis kept its queue"
    tis = finish(stack, api, run_id, "Redis data lost", fault_at, timeout=480)
    handed = log_lines(stack, "monitor", fault_at, "the broker lost the messages")
    assert handed, stack.logs("monitor", "scheduler")
    assert sum(line.count(f"{DAG}.work[") for line in handed) >= 1, handed
    assert all(t["state"] == "success" for t in tis), tis
    assert not started_twice(stack, fault_at), stack.logs("worker")


def test_two_schedulers_one_killed_mid_run_loses_no_task(stack: Stack, api: httpx.Client):
    """As on AWS (two schedulers): one is SIGKILLed mid-run; the other carries the run."""
    stack.run("up", "-d", "--no-recreate", "--scale", "scheduler=2", "scheduler")
    try:
        wait_healthy(stack)
        run_id = start_run(stack, api)
        fault_at = time.time()
        kill_main_process(stack, "scheduler", containers(stack, "scheduler")[0])
        tis = finish(stack, api, run_id, "one of two schedulers SIGKILL", fault_at)
    finally:
        stack.run("up", "-d", "--scale", "scheduler=1", "scheduler")
    assert all(t["try_number"] == 1 for t in tis), "a task was retried"
    assert not returned_by_monitor(stack, fault_at), stack.logs("monitor", "worker")


def test_the_triggerer_killed_with_tasks_deferred_loses_no_task(stack: Stack, api: httpx.Client):
    """Eight deferrable sensors wait on the triggerer; it is SIGKILLed and restarted by its restart
    policy, takes their triggers back, and each sensor ends in success on its first try."""
    dag = "fault_deferred"
    run_id = start_run(stack, api, running=8, dag=dag, state="deferred")
    fault_at = time.time()
    kill_main_process(stack, "triggerer")
    tis = finish(stack, api, run_id, "triggerer SIGKILL, 8 tasks deferred", fault_at, dag=dag)
    assert all(t["try_number"] == 1 for t in tis), "a task was retried"
    assert all(parse(t["end_date"]) > fault_at for t in tis), "a sensor ended before the kill: nothing was deferred"


def cgroup_memory(container: str, v2: str, v1: str) -> str:
    """A file of the container's memory cgroup: `v2` under cgroup v2, else `v1` (cgroup v1)."""
    script = f"cat /sys/fs/cgroup/{v2} 2>/dev/null || cat /sys/fs/cgroup/memory/{v1}"
    return docker("exec", container, "sh", "-c", script).stdout


def test_a_task_that_exhausts_memory_fails_with_the_reason_and_the_worker_survives(stack: Stack, api: httpx.Client):
    """The worker's container gets a memory limit 768 MiB above what it uses; `hog` allocates until
    the kernel kills it. It fails (no retries) with Airflow's out-of-memory line in its log; the
    worker process and its four other tasks carry on."""
    dag = "fault_oom"
    worker = containers(stack, "worker")[0]
    used = int(cgroup_memory(worker, "memory.current", "memory.usage_in_bytes"))
    limit = str(used + (768 << 20))
    docker("update", "--memory", limit, "--memory-swap", limit, worker)
    started = docker("inspect", "-f", "{{.State.StartedAt}}", worker).stdout
    try:
        run_id = start_run(stack, api, running=1, dag=dag)

        def finished():
            state = api.get(f"/dags/{dag}/dagRuns/{run_id}").json()["state"]
            return state if state in ("success", "failed") else None

        state = poll("fault_oom run finished", safe(finished), 300, lambda: stack.logs("worker", tail=80))
        tis = {(t["task_id"], t["map_index"]): t for t in task_instances(api, run_id, dag)}
        log = api.get(f"/dags/{dag}/dagRuns/{run_id}/taskInstances/hog/logs/1", headers={"Accept": "application/json"})
        events = cgroup_memory(worker, "memory.events", "memory.oom_control")
        same_worker = docker("inspect", "-f", "{{.State.StartedAt}}", worker).stdout == started
    finally:
        stack.run("up", "-d", "--force-recreate", "worker")  # without the limit
    assert state == "failed" and tis[("hog", -1)]["state"] == "failed", tis
    assert tis[("hog", -1)]["try_number"] == 1, tis[("hog", -1)]
    assert "Likely out of memory error (OOM)" in log.text, log.text[-3000:]
    assert any(line.startswith("oom_kill ") and int(line.split()[1]) >= 1 for line in events.splitlines()), events
    assert all(t["state"] == "success" for (task_id, _), t in tis.items() if task_id == "work"), tis
    assert same_worker, "the worker container restarted"


def test_a_worker_cut_off_for_a_minute_loses_no_task(stack: Stack, api: httpx.Client):
    """The worker leaves the stack's network for 60 s mid-run (Redis, the api-server and the
    database out of reach), then comes back. Its tasks' calls to the api-server retry through the
    outage; every task ends in success on its first try."""
    worker = containers(stack, "worker")[0]
    network = f"{PROJECT}_default"
    run_id = start_run(stack, api)
    fault_at = time.time()
    docker("network", "disconnect", network, worker)
    try:
        time.sleep(60)  # the fault's length, not a wait for a state
    finally:
        docker("network", "connect", "--alias", "worker", network, worker)
    tis = finish(stack, api, run_id, "worker cut off from the network for 60 s", fault_at, timeout=400)
    assert all(t["try_number"] == 1 for t in tis), "a task was retried"


def test_a_full_task_log_volume_is_reported_and_tasks_still_run(stack: Stack, api: httpx.Client, tmp_path):
    """The worker's task-log volume (a 4 MiB tmpfs here) is full before a run of 8 tasks starts.
    Every task succeeds on its first try; the worker says which log it could not write and why,
    and the tasks' log lines are in its output instead."""
    # The worker alone writes its task logs to a 4 MiB tmpfs (compose cannot swap the bind
    # mount of /opt/airflow/logs for a tmpfs, so the log folder moves instead).
    override = tmp_path / "full-task-logs.yml"
    override.write_text(
        "services:\n  worker:\n"
        "    environment: {AIRFLOW__LOGGING__BASE_LOG_FOLDER: /opt/airflow/full-logs}\n"
        "    volumes: [{type: tmpfs, target: /opt/airflow/full-logs, tmpfs: {size: 4194304}}]\n"
    )
    with_override = [*stack.compose[:6], "-f", str(override), *stack.compose[6:]]
    docker(*with_override[1:], "up", "-d", "worker", timeout=300)
    worker = containers(stack, "worker")[0]
    try:
        wait_healthy(stack)
        # Only ever a tmpfs, and at most 8 MiB written: never the host's disk.
        kind = docker("exec", worker, "stat", "-f", "-c", "%T", "/opt/airflow/full-logs").stdout.strip()
        assert kind == "tmpfs", f"the worker's /opt/airflow/full-logs is {kind}, not the test's tmpfs"
        fill = (
            "dd if=/dev/zero of=/opt/airflow/full-logs/filler bs=4k count=2048 2>/dev/null;"
            " df -k /opt/airflow/full-logs | tail -1"
        )
        free_kib = docker("exec", worker, "sh", "-c", fill).stdout.split()[3]
        assert free_kib == "0", f"the log volume is not full: {free_kib} KiB free"
        fault_at = time.time()
        run_id = start_run(stack, api, tasks=8, running=1)
        tis = finish(stack, api, run_id, "task log volume full", fault_at)
    finally:
        logs = docker("logs", worker)
        output = logs.stdout + logs.stderr
        print(f"===== the worker's output with its log volume full =====\n{output[-20000:]}")
        stack.run("up", "-d", "--force-recreate", "worker")
    assert all(t["try_number"] == 1 for t in tis), "a task was retried"
    reports = [line for line in output.splitlines() if "task log: cannot write" in line]
    assert len(reports) >= 8 and all("No space left on device" in line for line in reports), output[-5000:]


FILLED_LOGS = "/opt/airflow/full-logs"


def fill_log_volume(container: str) -> None:
    """Fill the container's FILLED_LOGS, a 4 MiB tmpfs (never the host's disk)."""
    kind = docker("exec", container, "stat", "-f", "-c", "%T", FILLED_LOGS).stdout.strip()
    assert kind == "tmpfs", f"{container}'s {FILLED_LOGS} is {kind}, not the test's tmpfs"
    fill = f"dd if=/dev/zero of={FILLED_LOGS}/filler bs=4k count=2048 2>/dev/null; df -k {FILLED_LOGS} | tail -1"
    free_kib = docker("exec", container, "sh", "-c", fill).stdout.split()[3]
    assert free_kib == "0", f"{container}'s log volume is not full: {free_kib} KiB free"


def test_a_full_log_volume_stops_neither_the_triggerer_nor_the_dag_processor(stack: Stack, api: httpx.Client, tmp_path):
    """The triggerer's and the dag-processor's log volumes (4 MiB tmpfs each) are full. Eight
    deferrable sensors still end in success on their first try, a DAG file added then is still
    parsed, and each component says which log it could not write and why."""
    override = tmp_path / "full-component-logs.yml"
    volume = f"[{{type: tmpfs, target: {FILLED_LOGS}, tmpfs: {{size: 4194304}}}}]"
    override.write_text(
        "services:\n"
        + "".join(
            f"  {service}:\n"
            f"    environment: {{AIRFLOW__LOGGING__BASE_LOG_FOLDER: {FILLED_LOGS},"
            f" AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY: {FILLED_LOGS}/dag_processor}}\n"
            f"    volumes: {volume}\n"
            for service in ("triggerer", "dag-processor")
        )
    )
    for service in ("triggerer", "dag-processor"):
        check = f"from airflow_stack.ops import logfiles; print(logfiles.incompatibilities({service!r}))"
        assert stack.python(service, check).strip().endswith("[]"), service
    with_override = [*stack.compose[:6], "-f", str(override), *stack.compose[6:]]
    docker(*with_override[1:], "up", "-d", "triggerer", "dag-processor", timeout=300)
    triggerer, processor = containers(stack, "triggerer")[0], containers(stack, "dag-processor")[0]
    new_dag = stack.workdir / "dags" / "fault_parsed_with_full_logs.py"
    try:
        wait_healthy(stack)
        fill_log_volume(triggerer)
        fill_log_volume(processor)
        fault_at = time.time()
        new_dag.write_text(
            "import pendulum\nfrom airflow.sdk import dag, task\n\n"
            "@dag(schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz='UTC'))\n"
            "def fault_parsed_with_full_logs():\n    @task\n    def noop():\n        pass\n    noop()\n\n"
            "fault_parsed_with_full_logs()\n"
        )
        new_dag.chmod(0o644)
        run_id = start_run(stack, api, running=8, dag="fault_deferred", state="deferred")
        tis = finish(stack, api, run_id, "triggerer and dag-processor log volumes full", fault_at, dag="fault_deferred")
        poll(
            "the DAG file added with the dag-processor's log volume full is parsed",
            lambda: api.get("/dags/fault_parsed_with_full_logs").status_code == 200,
            180,
            lambda: stack.logs("dag-processor"),
        )
        restarts = {
            name: docker("inspect", "-f", "{{.RestartCount}}", container).stdout.strip()
            for name, container in (("triggerer", triggerer), ("dag-processor", processor))
        }
    finally:
        outputs = {}
        for name, container in (("triggerer", triggerer), ("dag-processor", processor)):
            logs = docker("logs", container)
            outputs[name] = logs.stdout + logs.stderr
        for name, output in outputs.items():
            print(f"===== the {name}'s output with its log volume full =====\n{output[-10000:]}")
        new_dag.unlink(missing_ok=True)
        stack.run("up", "-d", "--force-recreate", "triggerer", "dag-processor")
    assert all(t["try_number"] == 1 for t in tis), "a task was retried"
    for name, output in outputs.items():
        reports = [line for line in output.splitlines() if "log: cannot write" in line]
        assert reports and all("No space left on device" in line for line in reports), (name, output[-5000:])
    assert restarts == {"triggerer": "0", "dag-processor": "0"}, restarts
