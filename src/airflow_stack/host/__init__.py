"""Host tools, run as `PYTHONPATH=src python3 -m airflow_stack.host.TOOL`: standard library
only (a unit test imports each without site-packages)."""
