"""An import committed in chunks: the run (what, by whom, how far) and its staged steps.

A run is worked out and validated in full, staged (its steps written while
nothing is visible yet), checked against what the preview read, then applied
one step range per transaction; whoever finds it applying with no driver
finishes it, so a run ends applied or refused, never half."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, DateTime, Index, Text
from sqlmodel import Field, SQLModel

from base.timeutil import utcnow


class ImportRunState(StrEnum):
    staging = "staging"  # its steps are being written; it blocks nothing and nothing of it is visible
    checking = "checking"  # staged; the versions the preview read are being compared (nothing visible yet)
    applying = "applying"  # checked; steps are being applied (导入中)
    done = "done"
    refused = "refused"  # something changed since the preview: nothing of it was written


class ImportRun(SQLModel, table=True):
    __tablename__ = "import_run"
    __table_args__ = (Index("ix_import_run_state", "state"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # "stores", "bindings"
    state: str = Field(max_length=16)
    # Who started it: the run is finished in their name, whoever resumes it.
    actor_user_id: int | None = Field(default=None, foreign_key="user.id")
    actor_name: str = Field(max_length=64)
    actor_role: str = Field(max_length=32)
    actor_branch_id: int | None = Field(default=None)
    filename: str = Field(max_length=255)
    steps_total: int = 0
    steps_done: int = 0
    # The figures the run reports when done (JSON), as worked out before staging.
    summary_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    started_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    # Moved on by every chunk: a run applying whose heartbeat is old has lost its driver.
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=DateTime)
    finished_at: datetime | None = Field(default=None, sa_type=DateTime)


class ImportRunStep(SQLModel, table=True):
    """One staged step: a list of changes of one sort (JSON), applied together."""
    __tablename__ = "import_run_step"
    run_id: int = Field(foreign_key="import_run.id", primary_key=True)
    seq: int = Field(primary_key=True)
    payload: str = Field(sa_column=Column(Text, nullable=False))
