"""`airflow-stack dags-check [FOLDER]` (`make dags-check`): import every DAG of a folder as the
dag-processor would, with no stack running, and report what would go wrong there.

Fails (exit 1) on an import error, a dag_id defined twice, a DAG with no task, or a folder with
no DAG at all (dag-sync would refuse such a release); lists the slowest files to parse either
way, since parse time is what the dag-processor spends on every file every 30 s. It imports
the files with Airflow's own BundleDagBag in the image the DAGs run in, with your requirements,
in a throwaway container that gets no credentials and no database.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from airflow_stack.core.errors import StackError, docs
from airflow_stack.dags.dagvalidate import reason_line
from airflow_stack.dags.releases import BUNDLE_NAME

SLOWEST = 5


def check(folder: Path) -> tuple[list[str], list[str]]:
    """(report lines, problems) for the DAG files under `folder`."""
    if not folder.is_dir():
        raise StackError(
            f"the DAG folder {folder} does not exist in the container",
            fix="make dags-check DAGS=path/to/your/dags (it is mounted at /opt/airflow/dags)",
        )
    # BundleDagBag puts the folder on sys.path, as the dag-processor does, and loads no examples.
    from airflow.dag_processing.dagbag import BundleDagBag

    started = time.monotonic()
    bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name=BUNDLE_NAME, load_op_links=False)
    elapsed = time.monotonic() - started
    problems = [
        f"{file}: {'dag_id defined twice: ' if 'DuplicatedId' in error else ''}{reason_line(error)}"
        for file, error in sorted(bag.import_errors.items())
    ]
    for dag_id, dag in sorted(bag.dags.items()):
        if not dag.tasks:
            problems.append(f"{_relative(dag.fileloc, folder)}: DAG {dag_id!r} has no task")
    if not bag.dags and not bag.import_errors:
        problems.append(f"{folder}: no DAG found (files need the words `airflow` and `dag` to be parsed)")
    stats = bag.dagbag_stats
    tasks = sum(s.task_num for s in stats)
    lines = [
        f"dags-check: {len(stats)} file(s), {len(bag.dags)} DAG(s), {tasks} task(s), "
        f"{len(bag.import_errors)} import error(s), parsed in {elapsed:.2f} s",
    ]
    if stats:
        lines.append(f"slowest files to parse (of {len(stats)}):")
        for stat in stats[:SLOWEST]:
            lines.append(
                f"  {stat.duration.total_seconds():6.2f} s  {_relative(stat.file, folder)} "
                f"({stat.dag_num} DAG(s), {stat.task_num} task(s))"
            )
    return lines, problems


def _relative(path: str | os.PathLike, folder: Path) -> str:
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return str(path).lstrip("/")


def main(folder: Path) -> int:
    lines, problems = check(folder)
    print("\n".join(lines))
    if problems:
        print(f"dags-check: FAILED, {len(problems)} problem(s):")
        print("\n".join(f"  {problem}" for problem in problems))
        print(f"fix: correct these files and run make dags-check again ({docs('dag-authoring.md#checking-dags')})")
        return 1
    print("dags-check: OK")
    return 0
