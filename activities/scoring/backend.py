"""The one small interface every scoring backend implements, and how progress is read.

Progress is read the same way for every backend: the scoring job writes one result JSON per
finished segment into work/<job>/styled/, so counting them counts finished segments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Protocol

from restyle.storage import BlobStore

from ..work_layout import WorkLayout


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELING = "canceling"
    COMPLETED = "completed"
    FAILED = "failed"
    PREEMPTED = "preempted"  # failed because its node was taken back: resubmit, it resumes
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.PREEMPTED, JobState.CANCELED)


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    segments_done: int
    segments_total: int
    message: str = ""

    def as_dict(self) -> dict:
        return {**asdict(self), "state": self.state.value}


class ScoringBackend(Protocol):
    def submit(self, job_id: str, segments_total: int, attempt: int) -> dict:
        """Start the scoring job over work/<job_id>/; return a small JSON-able handle."""

    def status(self, handle: dict) -> JobStatus: ...

    def cancel(self, handle: dict) -> None: ...

    def cancel_job(self, job_id: str) -> int:
        """Cancel every attempt of a job that is still running, knowing only its id (the HTTP API's
        DELETE has no handle); returns how many were canceled."""


def segments_done(store: BlobStore, job_id: str) -> int:
    names = store.list_names(store.settings.work_container, WorkLayout(job_id).styled_prefix)
    return sum(1 for name in names if name.endswith(".json"))


def scoring_results(store: BlobStore, job_id: str) -> list[dict]:
    """The scoring job's result JSON of every finished segment (frames, seconds, fps, device)."""
    layout = WorkLayout(job_id)
    return [store.read_json(store.settings.work_container, name)
            for name in store.list_names(store.settings.work_container, layout.styled_prefix) if name.endswith(".json")]
