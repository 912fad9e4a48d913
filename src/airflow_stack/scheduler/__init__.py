"""What runs inside the scheduler's process, installed before Airflow's command runs in it."""
