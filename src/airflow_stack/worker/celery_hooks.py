"""Imported by Celery workers at start (celeryconfig `imports`): connects the worker-side hooks
(scale-in protection and leaving a replaced ECS deployment, on `worker_ready`), imports and
builds, before the pool forks, what every task would import or build again (taskwarmup), makes
the main process's objects immortal so the pool shares them (sharedheap), and installs the
per-pool-process DAG parse cache (dagcache), the supervisor's prompt wait for a task's exit
(taskexit), its first heartbeat one interval after the start (firstheartbeat) and the guard on
task log files (airflow_stack.ops.logfiles)."""

from airflow_stack.core import sharedheap
from airflow_stack.core.errors import log
from airflow_stack.ops import logfiles
from airflow_stack.worker import dagcache, deploydrain, firstheartbeat, scaleprotect, taskexit, taskwarmup

scaleprotect.connect_to_celery()
deploydrain.connect_to_celery()
taskwarmup.import_task_modules()
taskwarmup.warm_api_client()
taskwarmup.warm_parent_death_signal()
log(dagcache.install())
log(taskexit.install())
log(firstheartbeat.install())
log(logfiles.install("worker"))
log(sharedheap.immortalize())
taskwarmup.freeze_heap()
taskwarmup.connect_to_celery()
