"""dag-sync's validation sandbox, for real: DAG code runs as another uid (these tests run as root,
as dag-sync starts), with a stand-in for Airflow's BundleDagBag that executes each DAG file. DAG
code cannot write outside its scratch, sees no credential, is limited in time and memory, and
leaves no process behind; the answers become ValidationFailed with each file's last error line."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from airflow_stack.core.errors import StackError
from airflow_stack.dags import dagvalidate

SRC = Path(__file__).resolve().parents[2] / "src"
# The sandbox's uid must be able to run the interpreter and read the package: the test's own
# interpreter and checkout may sit under folders only root may enter, so the system's Python and
# a world-readable copy of the package are used.
SYSTEM_PYTHON = "/usr/bin/python3"
SANDBOX_UID = random.randint(61000, 64000)  # a uid no process of this machine uses

FAKE_DAGBAG = '''
import runpy, traceback
from pathlib import Path

class BundleDagBag:
    """Stand-in for Airflow's: runs each file, a module-level `dag_id` is a DAG."""

    def __init__(self, dag_folder, bundle_path, bundle_name, load_op_links):
        self.dag_ids, self.import_errors = [], {}
        for path in sorted(Path(dag_folder).rglob("*.py")):
            try:
                found = runpy.run_path(str(path))
            except BaseException:
                self.import_errors[str(path.relative_to(dag_folder))] = traceback.format_exc()
                continue
            if "dag_id" in found:
                self.dag_ids.append(found["dag_id"])
'''

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(SYSTEM_PYTHON), reason="the sandbox switches uid: dag-sync starts as root"
)


@pytest.fixture
def world():
    """A world-readable folder (the sandbox's uid cannot read pytest's tmp_path) holding the
    stand-in Airflow package, a release to validate and a file standing for the live store."""
    root = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    os.chmod(root, 0o755)
    fake = root / "fake" / "airflow" / "dag_processing"
    fake.mkdir(parents=True)
    (root / "fake" / "airflow" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "dagbag.py").write_text(FAKE_DAGBAG)
    live = root / "live"
    live.mkdir()
    (live / "dag.py").write_text("dag_id = 'live'\n")
    shutil.copytree(SRC / "airflow_stack", root / "src" / "airflow_stack", ignore=shutil.ignore_patterns("__pycache__"))
    release = root / "release"
    release.mkdir()
    for path in root.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def validator(world: Path, timeout: float = 30, **env: str) -> dagvalidate.Validator:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{world / 'fake'}:{world / 'src'}", **env}
    return dagvalidate.Validator(SANDBOX_UID, timeout, 256, environment, python=SYSTEM_PYTHON)


def release(world: Path, **files: str) -> Path:
    for name, text in files.items():
        (world / "release" / name).write_text(text)
        os.chmod(world / "release" / name, 0o644)
    return world / "release"


def _state(proc: Path) -> str:
    return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]


def leftovers(sandbox: dagvalidate.Validator) -> list[int]:
    """Live processes of the sandbox uid other than the next, still unused sandbox (zombies
    waiting for their reaper do not count), after waiting up to 10 s for the kill to land."""
    deadline = time.monotonic() + 10
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                ours = entry.name.isdigit() and entry.stat().st_uid == SANDBOX_UID
                if ours and int(entry.name) != sandbox._next.pid and _state(entry) != "Z":
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                pass
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_clean_release_gives_its_dag_ids_and_runs_as_the_sandbox_uid(world):
    sandbox = validator(world)
    try:
        folder = release(world, **{"a.py": "import os\nassert os.getuid() == os.getgid() != 0\ndag_id = 'a'\n"})
        assert sandbox.validate(folder) == ["a"]
    finally:
        sandbox.close()


def test_dag_code_cannot_write_outside_its_scratch_sees_no_credential_and_leaves_no_process(world):
    live = world / "live" / "dag.py"
    before = live.read_bytes()
    code = f"""
import os, subprocess, sys
report = []
try:
    open({str(live)!r}, "w").write("owned")
    report.append("wrote the live release")
except OSError:
    pass
leaked = [k for k in os.environ if k.startswith(("AWS_", "AIRFLOW_STACK_")) or "TOKEN" in k or "PASSWORD" in k]
if leaked:
    report.append(f"saw {{leaked}}")
subprocess.Popen(["sleep", "600"], start_new_session=True)  # would outlive a plain fork
open("/tmp/left-behind", "w").write("x")
raise RuntimeError("; ".join(report) or "contained")
"""
    sandbox = validator(
        world,
        AWS_SECRET_ACCESS_KEY="aws-secret",
        AIRFLOW_STACK_DAG_SOURCE_TOKEN="source-token",
        AIRFLOW__CELERY__BROKER_URL="redis://:pw@redis/0",
        AIRFLOW__CORE__LOAD_EXAMPLES="false",
    )
    try:
        with pytest.raises(dagvalidate.ValidationFailed) as failed:
            sandbox.validate(release(world, **{"evil.py": code}))
        assert "evil.py: RuntimeError: contained" in str(failed.value)
        assert live.read_bytes() == before
        assert leftovers(sandbox) == []
        owned = [e.name for e in os.scandir("/tmp") if e.stat(follow_symlinks=False).st_uid == SANDBOX_UID]
        # what it wrote is gone; at most the next sandbox's own fresh scratch folder is there
        assert "left-behind" not in owned and len([n for n in owned if n.startswith("dag-validate-")]) <= 1
    finally:
        sandbox.close()
    assert sandbox_environment_keeps_only_safe_names()


def sandbox_environment_keeps_only_safe_names() -> bool:
    env = {"PATH": "/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "false", "AIRFLOW__CORE__FERNET_KEY": "k",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "cat x", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/x",
           "AIRFLOW_STACK_DAG_SOURCE_PASSWORD": "p", "HOME": "/home/airflow"}  # fmt: skip
    return dagvalidate.sandbox_environment(env) == {"PATH": "/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "false"}


def test_a_hang_is_killed_after_the_timeout_with_what_it_started(world):
    sandbox = validator(world, timeout=2)
    code = "import subprocess, time\nsubprocess.Popen(['sleep', '600'])\nwhile True:\n    pass\n"
    started = time.monotonic()
    try:
        with pytest.raises(dagvalidate.ValidationFailed, match="took longer than 2 s"):
            sandbox.validate(release(world, **{"spin.py": code}))
        assert time.monotonic() - started < 15
        assert leftovers(sandbox) == []
    finally:
        sandbox.close()


def test_memory_beyond_the_limit_is_an_import_error_not_a_dead_dag_sync(world):
    sandbox = validator(world)
    try:
        with pytest.raises(dagvalidate.ValidationFailed, match="MemoryError"):
            sandbox.validate(release(world, **{"big.py": "blob = bytearray(2 * 1024**3)\ndag_id = 'big'\n"}))
    finally:
        sandbox.close()


def test_import_errors_and_an_empty_release_are_refused(world):
    sandbox = validator(world)
    try:
        with pytest.raises(dagvalidate.ValidationFailed, match=r"1 file\(s\) with import errors: b.py: NameError"):
            sandbox.validate(release(world, **{"a.py": "dag_id = 'a'\n", "b.py": "undefined_name\n"}))
        (world / "release" / "a.py").unlink()
        (world / "release" / "b.py").write_text("x = 1\n")
        with pytest.raises(dagvalidate.ValidationFailed, match="holds no DAG"):
            sandbox.validate(world / "release")
    finally:
        sandbox.close()


def test_the_sandbox_uid_may_not_be_dag_syncs_own():
    with pytest.raises(StackError, match="is dag-sync's own uid"):
        dagvalidate.Validator(os.getuid(), 30, 256, {})


def test_a_syntax_error_is_reported_with_its_line():
    error = (
        'Traceback (most recent call last):\n  File "/r/dags/a.py", line 3\n    def f(\n         ^\n'
        "SyntaxError: '(' was never closed\n"
    )
    assert dagvalidate.reason_line(error) == "SyntaxError: '(' was never closed (line 3)"
    assert dagvalidate.reason_line("'(' was never closed (a.py, line 3)") == "'(' was never closed (a.py, line 3)"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ('Traceback (most recent call last):\n  File "a.py", line 2\n    x()\nKeyError: 1\n', "KeyError: 1 (line 2)"),
        (
            'Traceback (most recent call last):\n  File "a.py", line 9, in <module>\n    time.sleep(8)\n'
            '  File "/venv/lib/python3.13/site-packages/airflow/x.py", line 65, in handle\n    raise\n'
            "airflow.sdk.exceptions.AirflowTaskTimeout: DagBag import timeout for a.py after 4.0s.\n"
            "Please take a look at these docs to improve your DAG import time:\n* https://x, PID: 34\n",
            "airflow.sdk.exceptions.AirflowTaskTimeout: DagBag import timeout for a.py after 4.0s. (line 9)",
        ),
        ("DagBag import timeout for a.py after 4s.\nSee:\n* https://x\n", "DagBag import timeout for a.py after 4s."),
        ("", "unknown error"),
        ("only", "only"),
    ],
)
def test_the_line_that_says_what_went_wrong_is_reported(error, reason):
    assert dagvalidate.reason_line(error) == reason
