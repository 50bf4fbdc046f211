"""The compute-job phase both orchestrators share: submit an attempt, poll it with backoff, resubmit
failures (the job resumes), cancel at the deadline, and cancel on every failure path.

Generators joined with `yield from`, deterministic like their callers: policy arrives in the job's
input, time only from the context. The job kind (`stylize` for the video pipeline's scoring job,
`many_models` for a training run) travels in the job so a resubmission runs the same kind.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime, timedelta

import azure.durable_functions as df

from activities.compute.backend import COMPUTE_CHANGED, JobStatus

ProgressReport = Callable[[df.DurableOrchestrationContext, dict, dict, dict], None]
# prepare(context, job) -> job with `compute` (first attempt submitted); finish(context, job, completed
# status) -> (result, details of the "done" stage). Both are generators run with `yield from`.
Stage = Callable[..., Generator]


def run_compute_pipeline(context: df.DurableOrchestrationContext, prepare: Stage, report: ProgressReport,
                         finish: Stage, rejection: type[Exception]):
    """The shape both orchestrators share: prepare (skipped once continued as new), monitor the
    compute job, finish, clean up; on any failure but a rejection (nothing was started for it),
    cancel what is in flight and clean up, then fail with the original error."""
    job = renamed_fields(context.get_input())
    retry = retry_options(job["policy"])
    try:
        if "compute" not in job:
            job = yield from prepare(context, job)
        completed = yield from monitor(context, job, report)
        if completed is None:
            return None  # continued as new
        result, details = yield from finish(context, job, completed)
        yield context.call_activity_with_retry("cleanup", retry, {"job_id": context.instance_id, "succeeded": True})
        set_stage(context, job, "done", **details)
        return result
    except rejection:
        raise
    except Exception:
        set_stage(context, job, "failed")
        yield from stop_compute(context, job, retry)
        yield context.call_activity_with_retry("cleanup", retry, {"job_id": context.instance_id, "succeeded": False})
        raise


def retry_options(policy: dict) -> df.RetryOptions:
    return df.RetryOptions(first_retry_interval_in_milliseconds=round(policy["activity_retry_seconds"] * 1000),
                           max_number_of_attempts=policy["activity_retry_attempts"])


def set_stage(context: df.DurableOrchestrationContext, job: dict, stage: str, **details) -> None:
    """The custom status: the one progress channel the jobs API reads."""
    context.set_custom_status({"stage": stage, "blob": job["blob"], **details})


def now(context: df.DurableOrchestrationContext) -> str:
    return context.current_utc_datetime.isoformat()


def renamed_fields(job: dict) -> dict:
    """The job input with the names this code uses. A job that was running when the compute fields
    were renamed continues (continue_as_new) with the old ones: `scoring` for its compute state and
    `scoring_max_attempts` / `scoring_deadline_seconds` in its policy."""
    policy = {key.replace("scoring_", "compute_", 1) if key in _RENAMED_POLICY else key: value
              for key, value in job["policy"].items()}
    job = {**job, "policy": policy}
    if "scoring" in job and "compute" not in job:
        job["compute"] = job.pop("scoring")
    return job


_RENAMED_POLICY = ("scoring_max_attempts", "scoring_deadline_seconds")


def start_compute(context: df.DurableOrchestrationContext, job: dict, kind: str, units_total: int):
    """Submit attempt 1; returns the job with its `compute` state (handle, attempt, deadline, backoff)."""
    policy = job["policy"]
    deadline = context.current_utc_datetime + timedelta(seconds=policy["compute_deadline_seconds"])
    handle = yield context.call_activity_with_retry("submit_compute", retry_options(policy), {
        "job_id": context.instance_id, "units_total": units_total, "attempt": 1, "kind": kind,
        "events_url": job.get("events_url")})
    return {**job, "compute": {"kind": kind, "handle": handle, "attempt": 1, "deadline": deadline.isoformat(),
                               "delay": policy["poll_initial_seconds"], "started": now(context)}}


def monitor(context: df.DurableOrchestrationContext, job: dict, report: ProgressReport):
    """Poll the compute job with backoff; resubmit failures; cancel at the deadline.

    Returns None after scheduling continue_as_new (history bound), else the completed status.
    """
    policy, compute, retry = job["policy"], job["compute"], retry_options(job["policy"])
    deadline = datetime.fromisoformat(compute["deadline"])
    for _ in range(policy["polls_per_history"]):
        moment = context.current_utc_datetime
        if moment >= deadline:
            yield context.call_activity_with_retry("cancel_compute", retry, compute["handle"])
            raise TimeoutError(f"the {_noun(compute)} did not finish by its deadline "
                               f"({policy['compute_deadline_seconds']:.0f} s); it was canceled")
        yield from wait_for_change(context, min(moment + timedelta(seconds=compute["delay"]), deadline))
        polled = yield context.call_activity_with_retry("compute_status", retry, compute["handle"])
        status = JobStatus.from_dict(polled).as_dict()  # a poll made before the rename says segments_*
        report(context, job, compute, status)
        if status["state"] == "completed":
            return status
        if status["state"] in ("failed", "preempted"):
            if compute["attempt"] >= policy["compute_max_attempts"]:
                raise RuntimeError(f"{_noun(compute)} failed {compute['attempt']} times; last: {status['message']}")
            attempt = compute["attempt"] + 1
            handle = yield context.call_activity_with_retry("submit_compute", retry, {
                "job_id": context.instance_id, "units_total": status["units_total"], "attempt": attempt,
                "kind": compute.get("kind", "stylize"), "events_url": job.get("events_url")})
            compute = {**compute, "handle": handle, "attempt": attempt, "delay": policy["poll_initial_seconds"]}
            continue
        if status["state"] == "canceled":
            raise RuntimeError(f"the {_noun(compute)} was canceled")
        compute = {**compute, "delay": min(compute["delay"] * 2, policy["poll_max_seconds"])}
    context.continue_as_new({**job, "compute": compute})
    return None


def wait_for_change(context: df.DurableOrchestrationContext, until: datetime):
    """Until the next poll is due, or until the backend raises COMPUTE_CHANGED (the local runner does
    when its job ends), whichever comes first: a job that ends between polls is seen at once."""
    timer = context.create_timer(until)
    changed = context.wait_for_external_event(COMPUTE_CHANGED)
    winner = yield context.task_any([timer, changed])
    if winner is changed:
        timer.cancel()


def _noun(compute: dict) -> str:
    return "training run" if compute.get("kind") == "many_models" else "scoring"


def elapsed_seconds(context: df.DurableOrchestrationContext, compute: dict) -> float:
    return (context.current_utc_datetime - datetime.fromisoformat(compute["started"])).total_seconds()


def stop_compute(context: df.DurableOrchestrationContext, job: dict, retry: df.RetryOptions):
    """On every failure path, cancel whatever attempt is in flight (nodes bill until then); best
    effort: the failure being reported may be the very error that makes the cancel fail too."""
    try:
        yield context.call_activity_with_retry("cancel_job_compute", retry, {"job_id": context.instance_id})
    except Exception:  # noqa: BLE001 - the original error is the one to report
        set_stage(context, job, "failed", compute_cancel="failed")
