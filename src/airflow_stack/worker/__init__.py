"""What runs inside the Celery worker: its Celery config, task warm-up, the DAG parse cache, and on
ECS the background checks for scale-in protection and for leaving a replaced deployment."""
