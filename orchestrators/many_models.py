"""many_models: one orchestration per uploaded sales table, reading like the data flow.

validate (the table's header, or rejection) -> compute job (forecast_job: prepare the table into
buckets, one model per partition in parallel, then register, gate and batch-forecast) -> monitor
-> collect results (or the rejection the prepare step decided) -> cleanup.

The training run is a compute job like the video pipeline's scoring job (orchestrators/compute_job.py):
an Azure ML pipeline job in Azure (parallel step with partition_keys, then publish), a local process
pool here; polled with backoff, resubmitted on failure (it trains only partitions without a result),
canceled at the deadline and on every failure path. Deterministic: policy in the input, no I/O.
"""

from __future__ import annotations

import azure.durable_functions as df

from .compute_job import elapsed_seconds, retry_options, run_compute_pipeline, set_stage, start_compute

bp = df.Blueprint()
KIND = "many_models"


class TableRejected(ValueError):
    """The table failed validation; it has been moved to rejected/ with its reason."""


def validate(context: df.DurableOrchestrationContext, job: dict):
    """The table's header is checked (the rows are the compute job's) and the first attempt is
    submitted; its partition count is known once the prepare step has read the table."""
    set_stage(context, job, "validate")
    table = yield context.call_activity_with_retry("validate_table_upload", retry_options(job["policy"]), {
        "blob": job["blob"], "job_id": context.instance_id})
    if not table["accepted"]:
        raise TableRejected(f"table rejected: {table['reason']} (moved to {table['rejected_blob']})")
    job = {**job, "table": {key: table[key] for key in ("dataset", "format", "rows", "bytes")}}
    return (yield from start_compute(context, job, KIND, 0))


def _report_progress(context: df.DurableOrchestrationContext, job: dict, compute: dict, status: dict) -> None:
    done, total = status["units_done"], status["units_total"]
    if not total:  # the prepare step is still reading the table
        set_stage(context, job, "prepare", attempt=compute["attempt"], dataset=job["table"]["dataset"],
                  compute_state=status["state"])
        return
    elapsed = elapsed_seconds(context, compute)
    rate = done / elapsed * 60 if elapsed > 0 and done else None
    eta = (total - done) / rate * 60 if rate else None
    set_stage(context, job, "train", attempt=compute["attempt"], partitions_done=done, partitions_total=total,
              dataset=job["table"]["dataset"], models_per_minute=round(rate, 1) if rate else None,
              eta_seconds=round(eta) if eta is not None else None, compute_state=status["state"])


def collect(context: df.DurableOrchestrationContext, job: dict, completed: dict):
    dataset, retry = job["table"]["dataset"], retry_options(job["policy"])
    set_stage(context, job, "publish", dataset=dataset)
    results = yield context.call_activity_with_retry("collect_run_results", retry, {
        "job_id": context.instance_id, "dataset": dataset})
    if not results["accepted"]:  # the prepare step refused the table: rejected like a bad header
        yield context.call_activity_with_retry("cleanup", retry, {"job_id": context.instance_id, "succeeded": False})
        raise TableRejected(f"table rejected: {results['reason']} (moved to {results['rejected_blob']})")
    partitions = {"partitions_done": completed["units_done"], "partitions_total": completed["units_total"],
                  "dataset": dataset}
    return {"blob": job["blob"], **results}, partitions


def many_models(context: df.DurableOrchestrationContext):
    return (yield from run_compute_pipeline(context, validate, _report_progress, collect, TableRejected))


bp.orchestration_trigger(context_name="context")(many_models)
