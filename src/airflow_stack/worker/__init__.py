"""What runs inside the Celery worker: its Celery config, task warm-up and ECS scale-in protection."""
