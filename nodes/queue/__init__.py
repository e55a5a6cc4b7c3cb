"""The job queue adapter: Procrastinate on the records' PostgreSQL database (``procrastinate_queue.py``)."""
