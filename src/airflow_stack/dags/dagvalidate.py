"""Validation of a DAG release before it goes live, in a sandbox.

DAG code runs when it is imported, so validating a release runs it, as Airflow's dag-processor
does; this module gives that code nothing else. A release is imported with Airflow's own
BundleDagBag by a process (`python -m airflow_stack.dags.dagvalidate`) that:

- runs as a uid of its own (AIRFLOW_STACK_DAG_VALIDATE_UID; its gid the same number, no
  supplementary group), so it can read the copy of the release it validates but cannot write
  it, the release store or anything of dag-sync's; dag-sync keeps the store in a folder only
  its group may enter, which also keeps this uid away from an EFS mount that would act for it;
- gets an environment without credentials: no artifact-source token or password, no AWS_*
  variable (the ECS task role's endpoint among them), no secret Airflow option;
- has its own scratch folder (HOME, TMPDIR, AIRFLOW_HOME, cwd), a memory limit (RLIMIT_AS,
  AIRFLOW_STACK_DAG_VALIDATE_MEMORY_MB above what Airflow takes), a CPU limit and a file-size
  limit; whatever its uid leaves in /tmp, /var/tmp or /dev/shm is deleted afterwards;
- is used for one release only, then killed with every process its uid runs (`kill(-1)` as
  that uid), so nothing the DAG code started outlives the validation. The next one is started
  at once and imports Airflow while dag-sync waits for a release, so a release still costs only
  its parse time, not Airflow's 3-4 s import.

dag-sync refuses to validate when it cannot start a process as another uid: it must start as
root with CAP_SETUID and CAP_SETGID only (core.privileges), as docker-compose.yml and the ECS task
start it; or validation is switched off (AIRFLOW_STACK_DAG_VALIDATE=false).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from airflow_stack.core import privileges, settings
from airflow_stack.core.errors import StackError, docs
from airflow_stack.dags.releases import BUNDLE_NAME

MAX_RESULT_BYTES = 4 * 1024 * 1024
MAX_WRITTEN_BYTES = 256 * 1024 * 1024  # the largest file DAG code may write (RLIMIT_FSIZE)
# World-writable folders whose entries of the sandbox's uid are deleted after each validation.
CLEANED = ("/tmp", "/var/tmp", "/dev/shm")
# What the sandbox's environment keeps of dag-sync's (no AIRFLOW_STACK_*, no AWS_*).
_KEPT = re.compile(r"^(PATH|LANG|LANGUAGE|TZ|LC_\w+|PYTHON\w*|AIRFLOW__\w+)$")
_SECRET_WORDS = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|CONN|BROKER_URL|RESULT_BACKEND|_CMD$|_FILE$|AUTH")


class ValidationFailed(Exception):
    """The release does not import cleanly; it is not activated."""


def sandbox_environment(env: Mapping[str, str]) -> dict[str, str]:
    """What the validation process may see of `env`: no credential of any kind."""
    secrets = {s.name for s in settings.REGISTRY.values() if s.secret}
    return {k: v for k, v in env.items() if _KEPT.match(k) and k not in secrets and not _SECRET_WORDS.search(k)}


class Validator:
    """Validates releases, one sandboxed process each; the next one is started warm."""

    def __init__(
        self,
        uid: int,
        timeout: float,
        memory_mb: float,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ):
        if not privileges.can_switch():
            raise StackError(
                "dag-sync cannot run DAG code as a uid of its own to validate a release: it did not start as root",
                setting=settings.DAG_VALIDATE.name,
                fix="start dag-sync as root with only CAP_SETUID and CAP_SETGID and AIRFLOW_STACK_RUN_AS_UID set "
                f"(docker-compose.yml and the ECS task do; {docs('dag-deployment.md#validation-in-a-sandbox')}), "
                f"or set {settings.DAG_VALIDATE.name}=false",
            )
        if uid in os.getresuid():
            raise StackError(
                f"{settings.DAG_VALIDATE_UID.name}={uid} is dag-sync's own uid: DAG code would run with its powers",
                setting=settings.DAG_VALIDATE_UID.name,
                fix="choose a uid no other process uses (the default is 50001)",
            )
        self.uid = uid
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.env = sandbox_environment(os.environ if env is None else env)
        self.python = python
        self._next: subprocess.Popen | None = self._start()

    def _start(self) -> subprocess.Popen:
        uid = self.uid
        return subprocess.Popen(
            [self.python, "-m", "airflow_stack.dags.dagvalidate"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            cwd="/",
            preexec_fn=lambda: privileges.become(uid),  # noqa: PLW1509 - dag-sync starts no threads
            close_fds=True,
        )

    def validate(self, folder: Path) -> list[str]:
        """The DAG ids in `folder`; ValidationFailed on import errors, no DAG, or a hang."""
        process = self._next if self._next and self._next.poll() is None else self._start()
        self._next = None
        request = {"folder": str(folder), "memory_mb": self.memory_mb, "cpu_seconds": int(self.timeout) + 1}
        try:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.close()
            line = _read_line(process.stdout.fileno(), time.monotonic() + self.timeout)
            if line is None:
                raise ValidationFailed(
                    f"importing the DAGs took longer than {self.timeout:.0f} s (AIRFLOW_STACK_DAG_VALIDATE_TIMEOUT)"
                )
            if not line:
                process.wait(5)
                raise ValidationFailed(f"the process importing the DAGs died (exit code {process.returncode})")
            try:
                result = json.loads(line)
            except ValueError:
                raise ValidationFailed("the process importing the DAGs answered garbage") from None
        except BrokenPipeError:
            raise ValidationFailed(f"the process importing the DAGs died (exit code {process.wait(5)})") from None
        finally:
            privileges.kill_all(self.uid, clean=CLEANED)
            process.wait(10)
            process.stdout.close()
            self._next = self._start()
        return check(result)

    def close(self) -> None:
        privileges.kill_all(self.uid, clean=CLEANED)
        if self._next:
            self._next.wait(10)
            self._next = None


def _read_line(fd: int, deadline: float) -> bytes | None:
    """One line from `fd`, at most MAX_RESULT_BYTES: b"" at end of file, None past the deadline."""
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return data
        data += chunk
        if len(data) > MAX_RESULT_BYTES:
            raise ValidationFailed("the process importing the DAGs answered more than 4 MiB")
    return data.split(b"\n", 1)[0]


def check(result: dict) -> list[str]:
    errors, dags = result.get("errors") or {}, result.get("dags") or []
    if errors:
        details = "; ".join(f"{file}: {reason_line(error)}" for file, error in sorted(errors.items()))
        raise ValidationFailed(f"{len(errors)} file(s) with import errors: {details}")
    if not dags:
        raise ValidationFailed("the release holds no DAG: activating it would deactivate every DAG")
    return dags


def reason_line(error: str) -> str:
    """The line of an import error that says what went wrong, with the line of the DAG code it
    points at (a SyntaxError's message alone does not say where). In a traceback that is the
    first line of the exception after the last (indented) frame line, as an exception's message
    may go on over lines (Airflow's import timeout ends with a link); otherwise the message's
    first line."""
    raw = [line for line in error.strip().splitlines() if line.strip()]
    if not raw:
        return "unknown error"
    if raw[0].startswith("Traceback"):
        frames = [i for i, line in enumerate(raw) if line[:1].isspace()]
        reason = raw[frames[-1] + 1] if frames and frames[-1] + 1 < len(raw) else raw[-1]
    else:
        reason = raw[0]
    reason = reason.strip()[:500]
    # The last frame in the DAG's code, not in an installed library's (Airflow's timeout handler).
    where = re.findall(r'File "(?![^"]*(?:site|dist)-packages)[^"]*", line (\d+)', error)
    return f"{reason} (line {where[-1]})" if where and "line " not in reason else reason


# -- the sandboxed process ---------------------------------------------------------------------
def _limit(memory_mb: float, cpu_seconds: int) -> None:
    import resource

    with open("/proc/self/status") as status:
        vm_kib = next((int(line.split()[1]) for line in status if line.startswith("VmSize:")), 0)
    address_space = vm_kib * 1024 + int(memory_mb * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_WRITTEN_BYTES, MAX_WRITTEN_BYTES))


def main() -> int:
    """Run as the sandbox uid: import Airflow, wait for one release, import its DAGs, answer."""
    import tempfile

    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what DAG code prints goes to dag-sync's log, not into the answer
    scratch = tempfile.mkdtemp(prefix="dag-validate-")
    for name in ("HOME", "TMPDIR", "AIRFLOW_HOME"):
        os.environ[name] = scratch
    os.chdir(scratch)
    from airflow.dag_processing.dagbag import BundleDagBag  # warm before the release arrives

    request = json.loads(sys.stdin.readline() or "{}")
    folder = request.get("folder", "")
    try:
        _limit(float(request.get("memory_mb", 1024)), int(request.get("cpu_seconds", 300)))
        bag = BundleDagBag(dag_folder=folder, bundle_path=Path(folder), bundle_name=BUNDLE_NAME, load_op_links=False)
        result = {"dags": sorted(bag.dag_ids), "errors": {str(k): str(v) for k, v in bag.import_errors.items()}}
    except BaseException as exc:  # noqa: BLE001 - anything DAG code raises is the answer
        result = {"dags": [], "errors": {"(loading)": f"{type(exc).__name__}: {exc}"}}
    answer.write(json.dumps(result) + "\n")
    answer.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
