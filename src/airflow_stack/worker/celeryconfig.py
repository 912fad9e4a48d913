"""The image's Celery configuration: Airflow's default, plus the worker-side hooks of this
package. Selected with `[celery] celery_config_options =
airflow_stack.worker.celeryconfig.CELERY_CONFIG` (the compose file and the ECS task definitions set it).

Celery imports the modules listed in `imports` when a worker starts; the scale-in protection
module then starts its thread on `worker_ready` (scaleprotect).
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CELERY_CONFIG = {
    **DEFAULT_CELERY_CONFIG,
    "imports": [*DEFAULT_CELERY_CONFIG.get("imports", ()), "airflow_stack.worker.celery_hooks"],
}
