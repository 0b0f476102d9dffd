"""The sidecar: `python scheduler.py` runs the jobs forever; `--once` runs every
job once in order and exits 0, or 1 when a job failed.

APScheduler 3.x BlockingScheduler with an explicit time zone and explicit job
ids. Only the holder of the database lease acts; a second sidecar waits and
takes over when the first stops renewing. The lease is renewed every 10 s for
as long as this sidecar runs anything (also during `--once` and while SIGTERM
lets the running job finish), and each job checks it before every step that
writes or sends, so a sidecar that lost the lease stops instead of acting
beside the new holder.
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

from base.config import get_settings
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
        self.specs = {spec.id: spec for spec in job_registry.load_jobs()}
        # The lease while this sidecar holds it; None while it waits.
        self.fence: lease.Fence | None = None
        self.acting = threading.Event()
        # Set by SIGTERM: the running job finishes, jobs waiting for their turn do not start.
        self.stopping = threading.Event()
        self.job_lock = threading.Lock()  # one domain job at a time, in this process
        self.lease_lock = threading.Lock()

    def heartbeat(self) -> bool:
        """Take or renew the lease. Any error (database locked or unreachable)
        counts as not holding it: better to pause than to act unsure."""
        with self.lease_lock:
            try:
                with Session(self.engine) as session:
                    fence = lease.try_acquire(session=session, holder=self.holder)
                    if fence and fence != self.fence:
                        interrupted = job_registry.interrupt_runs_of_others(session=session, holder=self.holder)
                        session.commit()
                        log.info("lease generation %s acquired by %s: acting (%s runs of the previous holder "
                                 "marked interrupted)", fence.generation, self.holder, interrupted)
            except Exception:
                log.exception("lease renewal failed; not acting until it succeeds")
                fence = None
            if fence is None and self.acting.is_set():
                log.warning("lease lost by %s: waiting", self.holder)
            self.fence = fence
            (self.acting.set if fence else self.acting.clear)()
            return fence is not None

    def keep_renewing(self, stop: threading.Event) -> threading.Thread:
        """Renew in the background until `stop` is set (for `--once` and for the
        job SIGTERM lets finish, when the scheduler's heartbeat job no longer runs)."""
        def loop() -> None:
            while not stop.wait(LEASE_EVERY_SECONDS):
                self.heartbeat()

        thread = threading.Thread(target=loop, name="lease-renewal", daemon=True)
        thread.start()
        return thread

    def _run(self, job_id: str) -> bool | None:
        """Run a job under the current lease: its outcome, or None when this
        sidecar does not hold the lease (nothing was run)."""
        with self.job_lock:
            fence = self.fence
            if fence is None or not self.acting.is_set() or self.stopping.is_set():
                return None
            ctx = job_registry.JobContext(engine=self.engine, holder=self.holder, fence=fence)
            return job_registry.run_job(self.specs[job_id], ctx)

    def run(self, job_id: str) -> bool:
        """A scheduled run: a waiting sidecar does nothing and that is no failure."""
        return self._run(job_id) is not False

    def run_requests(self) -> None:
        fence = self.fence
        if fence is None or not self.acting.is_set():
            return
        with Session(self.engine) as session:
            requested = job_registry.take_requests(session=session, token=fence.token)
        for job_id, request_ids in requested.items():
            # A job no longer registered has nothing to run: its request is simply done.
            if job_id in self.specs:
                log.info("running %s on request", job_id)
                if self._run(job_id) is None:
                    # The lease was lost first: the next holder picks the request up.
                    return
            with Session(self.engine) as session:
                job_registry.finish_requests(session=session, request_ids=request_ids)

    def release(self) -> None:
        with self.lease_lock:
            try:
                with Session(self.engine) as session:
                    lease.release(session=session, holder=self.holder)
            except Exception:
                log.exception("could not release the lease; it expires by itself")
            self.fence = None
            self.acting.clear()

    def run_once(self, wait_seconds: float) -> int:
        deadline = time.monotonic() + wait_seconds
        while not self.heartbeat():
            if time.monotonic() > deadline:
                log.error("another sidecar holds the lease; gave up after %.0f s", wait_seconds)
                return 1
            time.sleep(2)
        stop = threading.Event()
        renewal = self.keep_renewing(stop)
        failed: list[str] = []
        try:
            for spec in self.specs.values():
                outcome = self._run(spec.id)
                if outcome is None:
                    log.error("lease lost: job %s not run", spec.id)
                if not outcome:
                    failed.append(spec.id)
        finally:
            stop.set()
            renewal.join()
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
        scheduler.add_job(self.heartbeat, "interval", seconds=LEASE_EVERY_SECONDS, id="heartbeat",
                          next_run_time=now)
        scheduler.add_job(self.run_requests, "interval", seconds=REQUESTS_EVERY_SECONDS, id="requests")
        for number, spec in enumerate(self.specs.values()):
            # Staggered starts, so that jobs do not all fire on the same second.
            scheduler.add_job(self.run, "interval", seconds=spec.interval_seconds, id=spec.id, args=[spec.id],
                              next_run_time=now + timedelta(seconds=3 + number * 2), jitter=2)
        draining = threading.Event()

        def stop(signum, _frame) -> None:
            log.info("signal %s: finishing the running job, then exiting", signum)
            self.stopping.set()
            # The heartbeat job stops with the scheduler; the lease must not lapse
            # while the running job finishes.
            self.keep_renewing(draining)
            scheduler.shutdown(wait=True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("sidecar %s starting (time zone %s, jobs: %s)", self.holder, zone, ", ".join(self.specs))
        try:
            scheduler.start()
        finally:
            draining.set()
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
