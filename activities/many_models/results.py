"""collect_results: a finished run's forecasts, metrics and gate report, from work/ to output/.

Published under output/many-models/<dataset>/{forecasts,metrics,gate}/run_id=<run>/, Hive-style
partitioned by run so Synapse serverless, Power BI or DuckDB read every run of a dataset as one
table (docs/many-models.md). Copies are idempotent: a redelivered activity copies the same blobs.
"""

from __future__ import annotations

from forecast_job.publish import GATE_REPORT
from restyle.storage import BlobStore

from ..work_layout import WorkLayout

OUTPUT_FOLDER = "many-models"


def collect_results(store: BlobStore, job_id: str, dataset: str) -> dict:
    settings = store.settings
    prefix = WorkLayout(job_id).results_prefix
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
    return {"dataset": dataset, "outputs": outputs, "trained": report["trained"], "passed": report["passed"],
            "pass_rate": report["pass_rate"], "decisions": report["decisions"],
            "flagged_in_production": report["flagged_in_production"],
            "partitions_short": report.get("short_history", 0),
            "partitions_rejected": len(report["rejected_partitions"]),
            "partitions_failed": len(report["failed_partitions"])}
