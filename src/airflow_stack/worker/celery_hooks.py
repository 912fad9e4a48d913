"""Imported by Celery workers at start (celeryconfig `imports`): connects the worker-side hooks
and imports, before the pool forks, what every task would import again (taskwarmup)."""

from airflow_stack.worker import scaleprotect, taskwarmup

scaleprotect.connect_to_celery()
taskwarmup.import_task_modules()
taskwarmup.freeze_heap()
taskwarmup.connect_to_celery()
