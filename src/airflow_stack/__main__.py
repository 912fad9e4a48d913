"""`python -m airflow_stack` is `airflow-stack`."""

import sys

from airflow_stack.cli import main

sys.exit(main())
