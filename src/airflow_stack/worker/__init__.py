"""What runs inside the Celery worker: its Celery config, task warm-up, the DAG parse cache and ECS
scale-in protection."""
