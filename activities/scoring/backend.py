"""The one small interface every compute backend implements, and how progress is read.

A backend runs two kinds of job (`JobKind`): the video pipeline's scoring job (scoring_job/, one
styled segment per unit of work) and the many-models training run (forecast_job/, one trained
partition per unit). Progress is read the same way for both and for every backend: the job writes
one result JSON per finished unit into work/<job>/ (styled/<segment>.json, trained/<partition>/result.json),
so counting them counts finished units.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Protocol

from restyle.storage import BlobStore

from ..work_layout import TRAINED_RESULT, WorkLayout


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


@dataclass(frozen=True)
class JobStatus:
    """`segments_*` count the job's units: segments of a video, partitions of a many-models run."""

    state: JobState
    segments_done: int
    segments_total: int
    message: str = ""

    def as_dict(self) -> dict:
        return {**asdict(self), "state": self.state.value}


# The external event a backend raises on the orchestration (at its events_url) when its job has ended.
COMPUTE_CHANGED = "compute_changed"


class ScoringBackend(Protocol):
    def submit(self, job_id: str, segments_total: int, attempt: int, kind: JobKind = JobKind.STYLIZE,
               events_url: str | None = None) -> dict:
        """Start the job of this kind over work/<job_id>/; return a small JSON-able handle (with `kind`).
        `events_url` (the orchestration's sendEventPostUri) is where a backend that can says the job ended."""

    def status(self, handle: dict) -> JobStatus: ...

    def cancel(self, handle: dict) -> None: ...

    def cancel_job(self, job_id: str) -> int:
        """Cancel every attempt of a job that is still running, knowing only its id (the HTTP API's
        DELETE has no handle); returns how many were canceled."""


def units_done(store: BlobStore, handle: dict) -> int:
    layout = WorkLayout(handle["job_id"])
    if kind_of(handle) is JobKind.MANY_MODELS:
        names = store.list_names(store.settings.work_container, layout.trained_prefix)
        return sum(1 for name in names if name.endswith(f"/{TRAINED_RESULT}"))
    names = store.list_names(store.settings.work_container, layout.styled_prefix)
    return sum(1 for name in names if name.endswith(".json"))


def scoring_summary(results: list[dict]) -> dict:
    """What the job's result says of its scoring: the devices it ran on and, under `precision:
    fast`, each distinct choice the ranks made with its measurements and reasons."""
    choices = {json.dumps(result["precision_choice"], sort_keys=True): result["precision_choice"]
               for result in results if isinstance(result.get("precision_choice"), dict)}
    return {"devices": sorted({result["device"] for result in results if result.get("device")}),
            **({"precision_choice": list(choices.values())} if choices else {})}


def scoring_results(store: BlobStore, job_id: str) -> list[dict]:
    """The scoring job's result JSON of every finished segment (frames, seconds, fps, device)."""
    layout = WorkLayout(job_id)
    return [store.read_json(store.settings.work_container, name)
            for name in store.list_names(store.settings.work_container, layout.styled_prefix) if name.endswith(".json")]
