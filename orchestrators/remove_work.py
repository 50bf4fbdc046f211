"""remove_work: a canceled job's intermediates removed by an activity, not inside the DELETE request.

DELETE /api/jobs/{id} marks the job canceled, terminates its orchestration and cancels its compute
attempts (a few calls), then starts this orchestration: removing work/<id>/ is a listing and
batched deletes (256 a request, restyle/storage.py) that a large many-models run would otherwise
make the DELETE wait for. Its instance id is the job's with REMOVAL_SUFFIX, so a repeated DELETE
starts nothing new; the jobs API lists only the pipelines' orchestrations, not this one.
"""

from __future__ import annotations

import azure.durable_functions as df

from .compute_job import retry_options

bp = df.Blueprint()
REMOVAL_SUFFIX = "-remove-work"


def remove_work(context: df.DurableOrchestrationContext):
    job = context.get_input()
    return (yield context.call_activity_with_retry("cleanup", retry_options(job["policy"]), {
        "job_id": job["job_id"], "succeeded": False, "remove": True}))


bp.orchestration_trigger(context_name="context")(remove_work)
