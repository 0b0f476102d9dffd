"""The sidecar's lease and heartbeat, its job runs, and "run now" requests."""

from datetime import datetime

from sqlalchemy import Column, DateTime, Index, String, Text
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


class SchedulerLease(SQLModel, table=True):
    """One row per lease name: only the holder whose lease has not expired acts."""

    name: str = Field(sa_column=Column(String(32), primary_key=True))
    holder: str = Field(max_length=128)
    acquired_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # Renewed by the heartbeat; the console shows its age.
    renewed_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    expires_at: datetime = Field(sa_type=DateTime)
    # Raised each time another sidecar takes the lease over: a job started under an
    # older generation must stop writing (fencing).
    generation: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class JobRun(SQLModel, table=True):
    __table_args__ = (Index("ix_job_run_job_started", "job_id", "started_at"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=64)
    holder: str = Field(default="", max_length=128)
    started_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    finished_at: datetime | None = Field(default=None, sa_type=DateTime)
    outcome: str = Field(default="running", max_length=16)
    figures_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Why the run failed or stopped, as key + params (base.problems).
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class JobRequest(SQLModel, table=True):
    """A "run now" asked for in the console, picked up by the acting sidecar."""

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=64)
    requested_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    requested_by_id: int | None = Field(default=None, foreign_key="user.id")
    picked_at: datetime | None = Field(default=None, sa_type=DateTime)
    # Which sidecar (holder#lease generation) picked it; a request picked by an
    # earlier holder and never done is picked again.
    picked_by: str | None = Field(default=None, max_length=160)
    # Set after the job ran: until then the request is still waiting.
    done_at: datetime | None = Field(default=None, sa_type=DateTime)
