"""Imported by Celery workers at start (celeryconfig `imports`): connects the worker-side hooks."""

from airflow_stack import scaleprotect

scaleprotect.connect_to_celery()
