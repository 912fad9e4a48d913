"""What runs inside the dag-processor's process, installed before Airflow's command runs in it."""
