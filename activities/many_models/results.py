"""collect_results: a finished run's forecasts, metrics and gate report, from work/ to output/; or,
where the prepare step refused the table, the upload's rejection with that reason.

Published under output/many-models/<dataset>/{forecasts,metrics,gate,history}/run_id=<run>/,
Hive-style partitioned by run so Synapse serverless, Power BI or DuckDB read every run of a
dataset as one table (docs/many-models.md). Copies are idempotent: a redelivered activity copies
the same blobs. Model bundles of the dataset that the new production map no longer points at are
tagged SUPERSEDED_TAG, and the data account's lifecycle rule deletes them after
`supersededModelDays` (infra/main.bicep): kept for a rollback, then not paid for.
"""

from __future__ import annotations

from forecast_job.azureml import MODELS_FOLDER
from forecast_job.production_map import ProductionMap, map_path
from forecast_job.publish import GATE_REPORT
from forecast_job.registry import split_range
from restyle.storage import BlobNotFound, BlobStore

from ..rejection import reject_upload
from ..work_layout import WorkLayout

OUTPUT_FOLDER = "many-models"
MODELS_PREFIX = f"{MODELS_FOLDER}/"
SUPERSEDED_TAG = "restyle-superseded"


def collect_results(store: BlobStore, job_id: str, dataset: str) -> dict:
    settings = store.settings
    layout = WorkLayout(job_id)
    prepared = store.read_json(settings.work_container, layout.prepared)
    if not prepared.get("accepted"):
        table = store.read_json(settings.work_container, layout.table)
        return reject_upload(store, table["blob"], prepared.get("reason", "the table was refused"),
                             {"bytes": table.get("bytes")}, container=settings.tables_container)
    prefix = layout.results_prefix
    target = f"{OUTPUT_FOLDER}/{dataset}/"
    names = sorted(store.list_names(settings.work_container, prefix))
    if not names:
        raise FileNotFoundError(f"the run wrote no results under {settings.work_container}/{prefix}")
    for name in names:
        store.copy(settings.work_container, name, settings.output_container, target + name[len(prefix):])
    report_name = next(name for name in names if name.endswith(f"/{GATE_REPORT}"))
    report = store.read_json(settings.work_container, report_name)
    outputs = {folder: f"{settings.output_container}/{target}{folder}/run_id={job_id}/"
               for folder in ("forecasts", "metrics", "gate", "history")}
    return {"accepted": True, "dataset": dataset, "outputs": outputs, "trained": report["trained"],
            "passed": report["passed"], "pass_rate": report["pass_rate"], "decisions": report["decisions"],
            "flagged_in_production": report["flagged_in_production"],
            "partitions_short": report.get("short_history", 0),
            "partitions_rejected": len(report["rejected_partitions"]),
            "partitions_failed": len(report["failed_partitions"]), "rows": prepared.get("rows"),
            "buckets": prepared.get("buckets"), "superseded_bundles": mark_superseded(store, dataset)}


def mark_superseded(store: BlobStore, dataset: str) -> int:
    """Tag the dataset's bundles that its production map no longer names; returns how many were tagged now."""
    container = store.service.get_container_client(store.settings.work_container)
    try:
        current = ProductionMap.from_json(store.read_bytes(store.settings.work_container,
                                                           MODELS_PREFIX + map_path(dataset)))
    except BlobNotFound:
        return 0
    used = {_blob_name(version.artifact) for version in current.partitions.values()}  # baselines: same bundle
    tagged = 0
    for blob in container.list_blobs(name_starts_with=f"{MODELS_PREFIX}{dataset}/", include=["tags"]):
        if not blob.name.endswith(".bin") or blob.name in used or (blob.tags or {}).get(SUPERSEDED_TAG) == "true":
            continue
        container.get_blob_client(blob.name).set_blob_tags({SUPERSEDED_TAG: "true"})
        tagged += 1
    return tagged


def _blob_name(uri: str) -> str:
    """A bundle's blob name in the work container, from a version's datastore URI."""
    return f"{MODELS_PREFIX}{split_range(uri)[0].split(f'/paths/{MODELS_PREFIX}', 1)[-1]}"
