"""stylize_video: one orchestration per uploaded video, reading like the data flow.

probe -> split (one activity per segment, in waves) -> manifest -> submit -> monitor -> stitch -> cleanup.
The submit/monitor phase is shared with the many-models pipeline (orchestrators/compute_job.py).

Deterministic: no I/O (settings arrive in the input as `policy`), time only from the context.
The monitor phase restarts itself with continue_as_new every `polls_per_history` polls, so the
history stays bounded however long the GPU job runs; progress is in the custom status.
"""

from __future__ import annotations

import azure.durable_functions as df

from .compute_job import elapsed_seconds, retry_options, run_compute_pipeline, set_stage, start_compute

bp = df.Blueprint()


class JobRejected(ValueError):
    """The upload failed validation; it has been moved to rejected/ with its reason."""


def prepare(context: df.DurableOrchestrationContext, job: dict):
    """probe, fan out the split, write the manifest, submit the first scoring attempt."""
    retry, job_id = retry_options(job["policy"]), context.instance_id
    set_stage(context, job, "probe")
    probed = yield context.call_activity_with_retry("probe", retry, {
        "blob": job["blob"], "job_id": job_id, "style": job["style"], "options": job.get("options", {}),
        **({"max_bytes": job["max_bytes"]} if job.get("max_bytes") else {})})  # an upload ticket's limit
    if not probed["accepted"]:
        raise JobRejected(f"input rejected: {probed['reason']} (moved to {probed['rejected_blob']})")
    source = {"blob": probed["blob"], "etag": probed["etag"], "job_id": job_id}
    units, wave, splits = probed["units"], job["policy"]["split_parallelism"], []
    for start in range(0, len(units), wave):
        set_stage(context, job, "split", segments_total=probed["segment_count"], segments_split=units[start][0])
        splits += yield context.task_all([context.call_activity_with_retry("split", retry, {
            **source, "first": first, "last": last}) for first, last in units[start:start + wave]])
    manifest = yield context.call_activity_with_retry("write_manifest", retry, {
        "job_id": job_id, "video": probed["video"], "style": probed["style"], "options": probed["options"],
        "split_frames": sum(split["frames"] for split in splits),
    })
    job = {**job, "blob": probed["blob"], "etag": probed["etag"], "video": probed["video"]}
    return (yield from start_compute(context, job, "stylize", manifest["segments_total"]))


def _report_progress(context: df.DurableOrchestrationContext, job: dict, compute: dict, status: dict) -> None:
    elapsed = elapsed_seconds(context, compute)
    done, total = status["units_done"], status["units_total"]
    frames_per_segment = job["video"]["frame_count"] / max(total, 1)
    fps = done * frames_per_segment / elapsed if elapsed > 0 and done else None
    eta = (total - done) * frames_per_segment / fps if fps else None
    set_stage(context, job, "scoring", attempt=compute["attempt"], segments_done=done, segments_total=total,
              frames_per_second=round(fps, 2) if fps else None, eta_seconds=round(eta) if eta is not None else None,
              compute_state=status["state"])


def stitch(context: df.DurableOrchestrationContext, job: dict, completed: dict):
    set_stage(context, job, "stitch")
    stitched = yield context.call_activity_with_retry("stitch", retry_options(job["policy"]), {
        "blob": job["blob"], "etag": job["etag"], "job_id": context.instance_id})
    segments = {"segments_done": completed["units_total"], "segments_total": completed["units_total"]}
    return {"blob": job["blob"], **stitched}, segments


def stylize_video(context: df.DurableOrchestrationContext):
    return (yield from run_compute_pipeline(context, prepare, _report_progress, stitch, JobRejected))


# Registered without rebinding the name, so tests drive the plain generator through the SDK.
bp.orchestration_trigger(context_name="context")(stylize_video)
