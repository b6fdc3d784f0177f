"""The thin Celery layer: app factory, task definitions that only delegate, periodic maintenance."""
