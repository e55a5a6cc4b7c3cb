"""Scale-out: many ComfyUI workers behind one job queue in the records' PostgreSQL database.

``jobs.py``: what a job is and the queue a host gives (engine-neutral); ``store.py``: the workers and jobs
beside the records; ``runner.py``: one job on one worker's ComfyUI (idempotent submission, adoption of a dead
worker's prompt, outputs to shared storage, the record written once); ``service.py``: submission, status,
cancellation and the worker list for routes and the command line.
"""
