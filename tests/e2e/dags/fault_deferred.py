"""Used by tests/e2e/test_faults.py: deferred tasks in flight when the triggerer is killed.

Eight deferrable sensors, each waiting `seconds` (40) from its start on the triggerer; the
trigger itself ends the task (`end_from_trigger`), so no worker slot is held while it waits.
"""

from datetime import timedelta

import pendulum
from airflow.providers.standard.sensors.time_delta import WaitSensor
from airflow.sdk import dag


@dag(
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=16,
)
def fault_deferred():
    WaitSensor.partial(task_id="wait", deferrable=True).expand(time_to_wait=[timedelta(seconds=40)] * 8)


fault_deferred()
