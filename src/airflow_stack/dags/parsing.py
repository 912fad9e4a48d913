"""Where the dag-processor finds DAG files, and how soon it sees a new one.

Two modes, one setting (AIRFLOW_STACK_DAG_REFRESH_INTERVAL, default 2 s) for both:

- the DAG folder (AIRFLOW_DAGS_DIR mounted at /opt/airflow/dags; Airflow's `dags-folder`
  bundle): the folder is listed every refresh instead of Airflow's 300 s, so a new file is
  parsed seconds after it is written. A changed file is re-parsed as soon as the
  dag-processor's queue is empty (Airflow compares its mtime with the last parse);
- the release store (AIRFLOW_STACK_DAG_RELEASES_DIR): the same bundle name with the stack's
  ReleaseDagBundle (dags.dagbundle), refreshed as often; a refresh is a readlink.

In both, a changed DAG is written to the database at once (Airflow waits 30 s after the
last write). Explicit AIRFLOW__* settings still win: each option is only set when unset.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping

from airflow_stack.core import settings
from airflow_stack.dags.releases import BUNDLE_NAME


def configure_airflow(env: MutableMapping[str, str]) -> None:
    """Set the dag-processor's refresh, and the release bundle when the store is used."""
    refresh = settings.DAG_REFRESH_INTERVAL.read(env)
    root = settings.DAG_RELEASES_DIR.read(env)
    if root:
        bundle = {
            "name": BUNDLE_NAME,
            "classpath": "airflow_stack.dags.dagbundle.ReleaseDagBundle",
            "kwargs": {"releases_dir": str(root), "refresh_interval": refresh},
        }
        settings.DAG_BUNDLE_CONFIG_LIST.set_default(env, json.dumps([bundle]))
    else:
        # The folder bundle takes its refresh from [dag_processor] refresh_interval.
        settings.DAG_FOLDER_REFRESH_INTERVAL.set_default(env, str(refresh))
    settings.BUNDLE_REFRESH_CHECK_INTERVAL.set_default(env, str(refresh))
    # Airflow skips writing a changed serialized DAG within 30 s of its last write, while it
    # already records the new bundle version on the DAG: a change made within 30 s of the
    # previous one would wait for the next parse, and a run created meanwhile would pair the old
    # DAG structure with the new code. Files are still parsed at most every
    # min_file_process_interval (30 s) unless they change, so steady DAGs are not written more often.
    settings.MIN_SERIALIZED_DAG_UPDATE_INTERVAL.set_default(env, "0")
