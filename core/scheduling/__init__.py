"""The sidecar's lease, its job registry, job runs and "run now" requests.

Jobs are declared next to their domain (`register_job` in the domain's module)
and listed in JOB_MODULES; `scheduler.py` runs them, the console only reads
their status and queues requests.
"""
