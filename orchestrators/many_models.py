"""many_models: one orchestration per uploaded sales table, reading like the data flow.

validate (table -> work folder, or rejection) -> train (forecast_job: one model per partition, in
parallel; then register, gate and batch-forecast) -> monitor -> collect results -> cleanup.

The training run is a compute job like the video pipeline's scoring job (orchestrators/compute_job.py):
an Azure ML pipeline job in Azure (parallel step with partition_keys, then publish), a local process
pool here; polled with backoff, resubmitted on failure (it trains only partitions without a result),
canceled at the deadline and on every failure path. Deterministic: policy in the input, no I/O.
"""

from __future__ import annotations

import azure.durable_functions as df

from .compute_job import elapsed_seconds, monitor, retry_options, set_stage, start_compute, stop_compute

bp = df.Blueprint()
KIND = "many_models"


class TableRejected(ValueError):
    """The table failed validation; it has been moved to rejected/ with its reason."""


def validate(context: df.DurableOrchestrationContext, job: dict):
    """The table becomes the run's work folder (partitions, manifest) and the first attempt is submitted."""
    set_stage(context, job, "validate")
    table = yield context.call_activity_with_retry("validate_table_upload", retry_options(job["policy"]), {
        "blob": job["blob"], "job_id": context.instance_id})
    if not table["accepted"]:
        raise TableRejected(f"table rejected: {table['reason']} (moved to {table['rejected_blob']})")
    job = {**job, "table": {key: table[key] for key in ("dataset", "partitions_total", "partitions_rejected",
                                                         "freq", "horizon")}}
    return (yield from start_compute(context, job, KIND, table["partitions_total"]))


def _report_progress(context: df.DurableOrchestrationContext, job: dict, scoring: dict, status: dict) -> None:
    done, total = status["segments_done"], status["segments_total"]
    elapsed = elapsed_seconds(context, scoring)
    rate = done / elapsed * 60 if elapsed > 0 and done else None
    eta = (total - done) / rate * 60 if rate else None
    set_stage(context, job, "train", attempt=scoring["attempt"], partitions_done=done, partitions_total=total,
              partitions_rejected=job["table"]["partitions_rejected"], dataset=job["table"]["dataset"],
              models_per_minute=round(rate, 1) if rate else None, eta_seconds=round(eta) if eta is not None else None,
              scoring_state=status["state"])


def many_models(context: df.DurableOrchestrationContext):
    job = context.get_input()
    retry = retry_options(job["policy"])
    try:
        if "scoring" not in job:
            job = yield from validate(context, job)
        completed = yield from monitor(context, job, _report_progress)
        if completed is None:
            return None  # continued as new
        set_stage(context, job, "publish", dataset=job["table"]["dataset"])
        results = yield context.call_activity_with_retry("collect_run_results", retry, {
            "job_id": context.instance_id, "dataset": job["table"]["dataset"]})
        yield context.call_activity_with_retry("cleanup", retry, {"job_id": context.instance_id, "succeeded": True})
        set_stage(context, job, "done", partitions_done=completed["segments_done"],
                  partitions_total=completed["segments_total"], dataset=job["table"]["dataset"])
        return {"blob": job["blob"], **results}
    except TableRejected:
        raise
    except Exception:
        set_stage(context, job, "failed")
        yield from stop_compute(context, job, retry)
        yield context.call_activity_with_retry("cleanup", retry, {"job_id": context.instance_id, "succeeded": False})
        raise


bp.orchestration_trigger(context_name="context")(many_models)
