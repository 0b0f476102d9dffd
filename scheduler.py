"""The sidecar: `python scheduler.py` runs the jobs forever; `--once` runs every
job once in order and exits 0, or 1 when a job failed.

APScheduler 3.x BlockingScheduler with an explicit time zone and explicit job
ids. Only the holder of the database lease acts; a second sidecar waits and
takes over when the first stops renewing. SIGTERM lets the running job finish.
"""

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlmodel import Session

from core.config import get_settings
from core.scheduling import jobs as job_registry
from core.scheduling import lease
from db.engine import DatabaseUnavailable, check_database, get_engine

log = logging.getLogger("scheduler")
LEASE_EVERY_SECONDS = 10
REQUESTS_EVERY_SECONDS = 5


class Sidecar:
    def __init__(self) -> None:
        self.engine = get_engine()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ctx = job_registry.JobContext(engine=self.engine, holder=self.holder)
        self.specs = {spec.id: spec for spec in job_registry.load_jobs()}
        self.acting = threading.Event()
        self.job_lock = threading.Lock()  # one domain job at a time, in this process

    def renew_lease(self) -> bool:
        with Session(self.engine) as session:
            held = lease.try_acquire(session=session, holder=self.holder)
        if held and not self.acting.is_set():
            log.info("lease acquired by %s: acting", self.holder)
        elif not held and self.acting.is_set():
            log.warning("lease lost by %s: waiting", self.holder)
        (self.acting.set if held else self.acting.clear)()
        return held

    def run(self, job_id: str) -> bool:
        if not self.acting.is_set():
            return True
        with self.job_lock:
            return job_registry.run_job(self.specs[job_id], self.ctx)

    def run_requests(self) -> None:
        if not self.acting.is_set():
            return
        with Session(self.engine) as session:
            requested = job_registry.take_requests(session=session)
        for job_id in requested:
            if job_id in self.specs:
                log.info("running %s on request", job_id)
                self.run(job_id)

    def release(self) -> None:
        with Session(self.engine) as session:
            lease.release(session=session, holder=self.holder)
        self.acting.clear()

    def run_once(self, wait_seconds: float) -> int:
        deadline = time.monotonic() + wait_seconds
        while not self.renew_lease():
            if time.monotonic() > deadline:
                log.error("another sidecar holds the lease; gave up after %.0f s", wait_seconds)
                return 1
            time.sleep(2)
        try:
            failed = [spec.id for spec in self.specs.values() if not self.run(spec.id)]
        finally:
            self.release()
        for job_id in failed:
            log.error("job %s failed", job_id)
        return 1 if failed else 0

    def run_forever(self) -> int:
        zone = get_settings().CONSOLE_TIMEZONE
        scheduler = BlockingScheduler(timezone=zone, job_defaults={"coalesce": True, "max_instances": 1,
                                                                   "misfire_grace_time": 60})
        # Aware, in the scheduler's zone: a naive now() would be read as that zone's wall clock.
        now = datetime.now(ZoneInfo(zone))
        scheduler.add_job(self.renew_lease, "interval", seconds=LEASE_EVERY_SECONDS, id="lease",
                          next_run_time=now)
        scheduler.add_job(self.run_requests, "interval", seconds=REQUESTS_EVERY_SECONDS, id="requests")
        for number, spec in enumerate(self.specs.values()):
            # Staggered starts, so that jobs do not all fire on the same second.
            scheduler.add_job(self.run, "interval", seconds=spec.interval_seconds, id=spec.id, args=[spec.id],
                              next_run_time=now + timedelta(seconds=3 + number * 2), jitter=2)

        def stop(signum, _frame) -> None:
            log.info("signal %s: finishing the running job, then exiting", signum)
            scheduler.shutdown(wait=True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("sidecar %s starting (time zone %s, jobs: %s)", self.holder, zone, ", ".join(self.specs))
        try:
            scheduler.start()
        finally:
            self.release()
            log.info("sidecar %s stopped", self.holder)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Store WeCom Console scheduler sidecar")
    parser.add_argument("--once", action="store_true", help="run every job once in order, then exit")
    parser.add_argument("--wait", type=float, default=120,
                        help="with --once: seconds to wait for another sidecar's lease")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        check_database(get_engine())
    except DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sidecar = Sidecar()
    return sidecar.run_once(args.wait) if args.once else sidecar.run_forever()


if __name__ == "__main__":
    sys.exit(main())
