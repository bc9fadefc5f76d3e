"""Jobs: each run in its own process; a queue in the database; workers that claim and run them."""
from backend.jobs.queue import cancel, resume, submit
from backend.jobs.worker import Worker, default_concurrency, worker_main

__all__ = ["Worker", "cancel", "default_concurrency", "resume", "submit", "worker_main"]
