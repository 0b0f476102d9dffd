"""Killing an import run's driver half-way, for the tests that resume it."""

from sqlmodel import Session, select

from core.import_runs import runs
from db.engine import get_engine
from db.models import ImportRun


class Killed(Exception):
    pass


def killed_after_chunks(monkeypatch, chunks: int) -> None:
    """The process dies in the pause after the `chunks`-th chunk (its work committed)."""
    pauses = []

    def pause(_seconds: float) -> None:
        with Session(get_engine()) as looking:
            applying = looking.exec(select(ImportRun).where(ImportRun.state == "applying")).first()
        if applying is not None:  # not a pause between batches of staged steps
            pauses.append(True)
            if len(pauses) == chunks:
                raise Killed

    monkeypatch.setattr(runs, "sleep", pause)
