"""The one small interface every compute backend implements, and how progress is read.

A backend runs two kinds of job (`JobKind`): the video pipeline's scoring job (scoring_job/, one
styled segment per unit of work) and the many-models training run (forecast_job/, one trained
partition per unit). Progress is read the same way for both and for every backend: the job writes
result files into work/<job>/ as units finish (styled/<segment>.json, one per segment;
trained/bucket=NNNN/partitions-<count>.json, one per bucket of partitions, the count in its name),
so listing them counts finished units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Protocol

from forecast_job.manifest import finished_units
from restyle.storage import BlobNotFound, BlobStore

from ..work_layout import WorkLayout


class JobKind(StrEnum):
    STYLIZE = "stylize"
    MANY_MODELS = "many_models"


def kind_of(handle: dict) -> JobKind:
    return JobKind(handle.get("kind", JobKind.STYLIZE))


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


UNITS = {JobKind.STYLIZE: "segment", JobKind.MANY_MODELS: "partition"}  # what one unit of work is


@dataclass(frozen=True)
class JobStatus:
    """`units_*` count the job's units of work: segments of a video, partitions of a many-models run."""

    state: JobState
    units_done: int | None
    units_total: int
    message: str = ""
    unit: str = UNITS[JobKind.STYLIZE]

    def as_dict(self) -> dict:
        return {**asdict(self), "state": self.state.value}

    @classmethod
    def from_dict(cls, status: dict) -> JobStatus:
        """Also reads what a status activity returned before the fields were generic (`segments_*`,
        kept in the history of jobs that were running when this code was deployed)."""
        done = status.get("units_done", status.get("segments_done"))
        total = status.get("units_total", status.get("segments_total"))
        return cls(JobState(status["state"]), done, total, status.get("message", ""), status.get("unit", "segment"))


def units_total(handle: dict) -> int:
    """The attempt's unit count from its handle (`segments_total` in handles written before the rename)."""
    return handle.get("units_total", handle.get("segments_total"))


# The external event a backend raises on the orchestration (at its events_url) when its job has ended.
COMPUTE_CHANGED = "compute_changed"


class ComputeBackend(Protocol):
    def submit(self, job_id: str, units_total: int, attempt: int, kind: JobKind = JobKind.STYLIZE,
               events_url: str | None = None) -> dict:
        """Start the job of this kind over work/<job_id>/; return a small JSON-able handle (with `kind`).
        `events_url` (the orchestration's sendEventPostUri) is where a backend that can says the job ended."""

    def status(self, handle: dict) -> JobStatus: ...

    def cancel(self, handle: dict) -> None: ...

    def cancel_job(self, job_id: str) -> int:
        """Cancel every attempt of a job that is still running, knowing only its id (the HTTP API's
        DELETE has no handle); returns how many were canceled."""


def prepared(store: BlobStore, handle: dict) -> dict | None:
    """A many-models run's prepare summary (or its refusal of the table), once the prepare step wrote it."""
    if kind_of(handle) is not JobKind.MANY_MODELS:
        return None
    try:
        return store.read_json(store.settings.work_container, WorkLayout(handle["job_id"]).prepared)
    except BlobNotFound:
        return None


def observe(store: BlobStore, handle: dict) -> tuple[int, int, str, str | None]:
    """(units done, units total, unit, the refusal of a many-models table or None). A run's
    partition count is known once its prepare step has read the table; until then the total is 0."""
    unit = UNITS[kind_of(handle)]
    summary = prepared(store, handle)
    if summary is not None and not summary.get("accepted"):
        return 0, 0, unit, summary.get("reason", "the table was refused")
    total = summary["partitions"] if summary is not None else units_total(handle)
    return units_done(store, handle), total, unit, None


def units_done(store: BlobStore, handle: dict) -> int:
    """Finished units of the attempt's job, counted from the result JSONs in work/<job>/."""
    layout = WorkLayout(handle["job_id"])
    if kind_of(handle) is JobKind.MANY_MODELS:
        names = store.list_names(store.settings.work_container, layout.trained_prefix)
        return finished_units(names)
    names = store.list_names(store.settings.work_container, layout.styled_prefix)
    return sum(1 for name in names if name.endswith(".json"))
