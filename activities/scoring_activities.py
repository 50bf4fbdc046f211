"""manifest and scoring-job activities: plain functions the Durable wrappers call."""

from __future__ import annotations

import time
from pathlib import PurePosixPath

from restyle.storage import BlobStore
from scoring_job.manifest import Manifest, ScoringOptions, Segment
from scoring_job.style_spec import ImageStyle, parse_style

from .scoring.backend import JobKind, ScoringBackend
from .segment_plan import SegmentPlan
from .work_layout import WorkLayout, segment_path


def write_manifest(store: BlobStore, job_id: str, video: dict, style: str, options: dict, split_frames: int) -> dict:
    """work/<job>/manifest.json from the plan; refuses when the split lost or gained frames."""
    settings = store.settings
    layout = WorkLayout(job_id)
    plan = SegmentPlan.from_dict(store.read_json(settings.work_container, layout.plan))
    if not plan.total_frames == split_frames == video["frame_count"]:
        raise ValueError(f"frame counts disagree: plan {plan.total_frames}, split {split_frames}, "
                         f"video {video['frame_count']}")
    segments = [Segment(index=s.index, path=segment_path(s.index), frames=s.frames)
                for s in plan.segments]
    if isinstance(parse_style(style), ImageStyle):  # the painting travels with the job's inputs
        name = f"style/{PurePosixPath(style).name}"
        store.copy(settings.styles_container, style, settings.work_container, layout.inside(name))
        style = name
    manifest = Manifest(job_id=job_id, fps=video["fps"], style=style, options=ScoringOptions(**options),
                        segments=segments)
    store.write_json(settings.work_container, layout.manifest, manifest.model_dump(mode="json"))
    return {"segments_total": len(segments), "frames_total": manifest.total_frames}


class JobCanceled(RuntimeError):
    """The job was canceled (DELETE /api/jobs/{id}): no scoring attempt may start for it."""


def mark_canceled(store: BlobStore, job_id: str) -> None:
    store.write_json(store.settings.work_container, WorkLayout(job_id).canceled_marker, {"canceled": True})


def submit_attempt(store: BlobStore, backend: ScoringBackend, job_id: str, segments_total: int, attempt: int,
                   kind: JobKind = JobKind.STYLIZE, events_url: str | None = None) -> dict:
    """Submit unless the job was canceled; checked again after the submit, because a DELETE may mark
    the job and sweep its attempts while this activity runs (terminating an orchestration does not
    stop its activities). Either the sweep finds this attempt or this check cancels it."""
    marker = WorkLayout(job_id).canceled_marker
    if store.exists(store.settings.work_container, marker):
        raise JobCanceled(f"job {job_id} was canceled; attempt {attempt} not submitted")
    handle = backend.submit(job_id, segments_total, attempt, kind, events_url)
    if store.exists(store.settings.work_container, marker):
        backend.cancel(handle)
        raise JobCanceled(f"job {job_id} was canceled while attempt {attempt} was being submitted; canceled it")
    return {**handle, "submitted_at": time.time()}  # the start of the attempt's span


def close_attempt(store: BlobStore, handle: dict, state: str) -> bool:
    """True for the one poll (or cancel) that first sees this attempt end: a redelivered final poll
    must not emit the attempt's span and per-segment totals a second time."""
    layout = WorkLayout(handle["job_id"])
    return store.create_json(store.settings.work_container, layout.attempt_closed(handle.get("attempt", 0)),
                             {"state": state, "closed_at": time.time()})


def backend_for(store: BlobStore) -> ScoringBackend:
    if store.settings.scoring_backend == "azureml":
        from .scoring.azureml import AzureMLBackend

        return AzureMLBackend.from_settings(store)
    from .scoring.local import LocalBackend

    return LocalBackend(store)
