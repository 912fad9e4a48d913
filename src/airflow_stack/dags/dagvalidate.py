"""Validation of a DAG release before it goes live: import every DAG file with Airflow's own
BundleDagBag, the way the dag-processor does, in a child process.

The child is forked from the dag-sync service, which imported Airflow once at start
(`preload`), so a release costs its parse time, not Airflow's 3-4 s import. DAG code runs in
the child only: whatever it does at import time cannot touch the service, and a hang is
killed after the timeout.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from pathlib import Path

from airflow_stack.dags.releases import BUNDLE_NAME


class ValidationFailed(Exception):
    """The release does not import cleanly; it is not activated."""


def preload() -> None:
    """Import what the child needs once, in the parent, so every fork starts warm."""
    from airflow.dag_processing.dagbag import BundleDagBag  # noqa: F401


def _child(folder: str, conn) -> None:
    try:
        from airflow.dag_processing.dagbag import BundleDagBag

        bag = BundleDagBag(dag_folder=folder, bundle_path=Path(folder), bundle_name=BUNDLE_NAME, load_op_links=False)
        conn.send({"dags": sorted(bag.dag_ids), "errors": {str(k): str(v) for k, v in bag.import_errors.items()}})
    except BaseException as exc:  # noqa: BLE001 - anything DAG code raises is the answer
        conn.send({"dags": [], "errors": {"(loading)": f"{type(exc).__name__}: {exc}"}})
    finally:
        conn.close()
        os._exit(0)


def validate(folder: Path, timeout: float) -> list[str]:
    """The DAG ids in `folder`; ValidationFailed on import errors, no DAG, or a hang."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(str(folder), sender), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout):
            child.kill()
            raise ValidationFailed(
                f"importing the DAGs took longer than {timeout:.0f} s (AIRFLOW_STACK_DAG_VALIDATE_TIMEOUT)"
            )
        try:
            result = receiver.recv()
        except EOFError:
            child.join(5)
            raise ValidationFailed(f"the process importing the DAGs died (exit code {child.exitcode})") from None
    finally:
        receiver.close()
        child.join(5)
    if result["errors"]:
        details = "; ".join(f"{file}: {_last_line(error)}" for file, error in sorted(result["errors"].items()))
        raise ValidationFailed(f"{len(result['errors'])} file(s) with import errors: {details}")
    if not result["dags"]:
        raise ValidationFailed("the release holds no DAG: activating it would deactivate every DAG")
    return result["dags"]


def _last_line(error: str) -> str:
    """The error's last line, with the line of the DAG file it points at (a SyntaxError's
    message alone does not say where)."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    last = lines[-1][:500]
    where = re.findall(r'File "[^"]*", line (\d+)', error)
    return f"{last} (line {where[-1]})" if where and "line " not in last else last
