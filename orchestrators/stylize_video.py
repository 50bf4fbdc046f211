"""stylize_video: one orchestration per uploaded video, reading like the data flow.

probe -> split (one activity per segment, in waves) -> manifest -> submit -> monitor -> stitch -> cleanup.

Deterministic: no I/O (settings arrive in the input as `policy`), time only from the context.
The monitor phase restarts itself with continue_as_new every `polls_per_history` polls, so the
history stays bounded however long the GPU job runs; progress is in the custom status.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import azure.durable_functions as df

bp = df.Blueprint()


class JobRejected(ValueError):
    """The upload failed validation; it has been moved to rejected/ with its reason."""


def _retry(policy: dict) -> df.RetryOptions:
    return df.RetryOptions(first_retry_interval_in_milliseconds=round(policy["activity_retry_seconds"] * 1000),
                           max_number_of_attempts=policy["activity_retry_attempts"])


def _status(context: df.DurableOrchestrationContext, job: dict, stage: str, **details) -> None:
    context.set_custom_status({"stage": stage, "blob": job["blob"], **details})


def prepare(context: df.DurableOrchestrationContext, job: dict):
    """probe, fan out the split, write the manifest, submit the first scoring attempt."""
    retry, job_id = _retry(job["policy"]), context.instance_id
    _status(context, job, "probe")
    probed = yield context.call_activity_with_retry("probe", retry, {
        "blob": job["blob"], "job_id": job_id, "style": job["style"], "options": job.get("options", {})})
    if not probed["accepted"]:
        raise JobRejected(f"input rejected: {probed['reason']} (moved to {probed['rejected_blob']})")
    source = {"blob": probed["blob"], "etag": probed["etag"], "job_id": job_id}
    units, wave, splits = probed["units"], job["policy"]["split_parallelism"], []
    for start in range(0, len(units), wave):
        _status(context, job, "split", segments_total=probed["segment_count"], segments_split=units[start][0])
        splits += yield context.task_all([context.call_activity_with_retry("split", retry, {
            **source, "first": first, "last": last}) for first, last in units[start:start + wave]])
    manifest = yield context.call_activity_with_retry("write_manifest", retry, {
        "job_id": job_id, "video": probed["video"], "style": probed["style"], "options": probed["options"],
        "split_frames": sum(split["frames"] for split in splits),
    })
    deadline = context.current_utc_datetime + timedelta(seconds=job["policy"]["scoring_deadline_seconds"])
    handle = yield context.call_activity_with_retry("submit_scoring", retry, {
        "job_id": job_id, "segments_total": manifest["segments_total"], "attempt": 1})
    return {**job, "blob": probed["blob"], "etag": probed["etag"], "video": probed["video"],
            "scoring": {"handle": handle, "attempt": 1, "deadline": deadline.isoformat(),
                        "delay": job["policy"]["poll_initial_seconds"], "started": _now(context)}}


def monitor(context: df.DurableOrchestrationContext, job: dict):
    """Poll the scoring job with backoff; resubmit failures; cancel at the deadline.

    Returns None after scheduling continue_as_new (history bound), else the completed status.
    """
    policy, scoring, retry = job["policy"], job["scoring"], _retry(job["policy"])
    deadline = datetime.fromisoformat(scoring["deadline"])
    for _ in range(policy["polls_per_history"]):
        now = context.current_utc_datetime
        if now >= deadline:
            yield context.call_activity_with_retry("cancel_scoring", retry, scoring["handle"])
            raise TimeoutError(f"scoring did not finish by its deadline ({policy['scoring_deadline_seconds']:.0f} s); "
                               "the job was canceled")
        yield context.create_timer(min(now + timedelta(seconds=scoring["delay"]), deadline))
        status = yield context.call_activity_with_retry("scoring_status", retry, scoring["handle"])
        _report_progress(context, job, scoring, status)
        if status["state"] == "completed":
            return status
        if status["state"] in ("failed", "preempted"):
            if scoring["attempt"] >= policy["scoring_max_attempts"]:
                raise RuntimeError(f"scoring failed {scoring['attempt']} times; last: {status['message']}")
            attempt = scoring["attempt"] + 1
            handle = yield context.call_activity_with_retry("submit_scoring", retry, {
                "job_id": context.instance_id, "segments_total": status["segments_total"], "attempt": attempt})
            scoring = {**scoring, "handle": handle, "attempt": attempt, "delay": policy["poll_initial_seconds"]}
            continue
        if status["state"] == "canceled":
            raise RuntimeError("the scoring job was canceled")
        scoring = {**scoring, "delay": min(scoring["delay"] * 2, policy["poll_max_seconds"])}
    context.continue_as_new({**job, "scoring": scoring})
    return None


def _report_progress(context: df.DurableOrchestrationContext, job: dict, scoring: dict, status: dict) -> None:
    elapsed = (context.current_utc_datetime - datetime.fromisoformat(scoring["started"])).total_seconds()
    done, total = status["segments_done"], status["segments_total"]
    frames_per_segment = job["video"]["frame_count"] / max(total, 1)
    fps = done * frames_per_segment / elapsed if elapsed > 0 and done else None
    eta = (total - done) * frames_per_segment / fps if fps else None
    _status(context, job, "scoring", attempt=scoring["attempt"], segments_done=done, segments_total=total,
            frames_per_second=round(fps, 2) if fps else None, eta_seconds=round(eta) if eta is not None else None,
            scoring_state=status["state"])


def _now(context: df.DurableOrchestrationContext) -> str:
    return context.current_utc_datetime.isoformat()


def stylize_video(context: df.DurableOrchestrationContext):
    job = context.get_input()
    retry = _retry(job["policy"])
    try:
        if "scoring" not in job:
            job = yield from prepare(context, job)
        completed = yield from monitor(context, job)
        if completed is None:
            return None  # continued as new
        _status(context, job, "stitch")
        stitched = yield context.call_activity_with_retry("stitch", retry, {
            "blob": job["blob"], "etag": job["etag"], "job_id": context.instance_id})
        yield context.call_activity_with_retry("cleanup", retry, {"job_id": context.instance_id, "succeeded": True})
        _status(context, job, "done", segments_done=completed["segments_total"],
                segments_total=completed["segments_total"])
        return {"blob": job["blob"], **stitched}
    except JobRejected:
        raise
    except Exception:
        _status(context, job, "failed")
        yield from _stop_scoring(context, job, retry)
        yield context.call_activity_with_retry("cleanup", retry, {"job_id": context.instance_id, "succeeded": False})
        raise


def _stop_scoring(context: df.DurableOrchestrationContext, job: dict, retry: df.RetryOptions):
    """On every failure path, cancel whatever attempt is in flight (GPU nodes bill until then); best
    effort: the failure being reported may be the very error that makes the cancel fail too."""
    try:
        yield context.call_activity_with_retry("cancel_job_scoring", retry, {"job_id": context.instance_id})
    except Exception:  # noqa: BLE001 - the original error is the one to report
        _status(context, job, "failed", scoring_cancel="failed")


# Registered without rebinding the name, so tests drive the plain generator through the SDK.
bp.orchestration_trigger(context_name="context")(stylize_video)
