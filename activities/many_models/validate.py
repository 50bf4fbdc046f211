"""validate_table: an uploaded sales table becomes a training run's work folder, or a rejection.

The table is read whole (pandas), so it is capped by `max_table_bytes`; every read is pinned to the
ETag the trigger saw. Faults of the whole table (unreadable, missing columns, unparseable dates,
non-numeric targets, bad options) reject the upload with the reason, as a bad video is rejected;
faults of single partitions (duplicate timestamps, gaps, missing values) are listed in
work/<job>/rejections.json and reach the gate report, while the other partitions train. A table
none of whose partitions can train is rejected with the first reasons.
"""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path, PurePosixPath

from forecast_job.manifest import MANIFEST_NAME, prepare_work
from forecast_job.naming import check_dataset
from forecast_job.options import OptionsError, options_from_metadata
from forecast_job.table import TableError, read_table
from restyle.storage import BlobStore

from ..rejection import reject_upload
from ..work_layout import WorkLayout

PARQUET_MAGIC = b"PAR1"
SHOWN_REJECTIONS = 3


def dataset_name(blob: str, metadata: dict[str, str]) -> str:
    """`dataset` metadata, else the blob's name (lower-cased, other characters as '-'): models of
    the same dataset are versions of each other across runs (champion and challenger)."""
    given = metadata.get("dataset")
    if given:
        return check_dataset(given)
    stem = PurePosixPath(blob).name.split(".")[0].lower()
    return re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_")[:63] or "table"


def table_format(blob: str, head: bytes) -> str:
    """By content first (Parquet's magic bytes), else by extension, else CSV."""
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    suffix = PurePosixPath(blob).suffix.lower().lstrip(".")
    return suffix if suffix in ("csv", "txt", "parquet", "pq") else "csv"


def validate_table(store: BlobStore, blob: str, job_id: str) -> dict:
    settings = store.settings
    container = settings.tables_container
    info = store.info(container, blob)
    facts = {"bytes": info.size}

    def reject(reason: str) -> dict:
        return reject_upload(store, blob, reason, facts, container=container)

    if info.size > settings.max_table_bytes:
        return reject(f"the table is {info.size} bytes; the limit is {settings.max_table_bytes} "
                      "(RESTYLE_MAX_TABLE_BYTES): split it by partition into several uploads")
    metadata = {key.lower(): value for key, value in info.metadata.items()}
    try:
        table_options, train_options = options_from_metadata(metadata)
        dataset = dataset_name(blob, metadata)
    except (OptionsError, ValueError) as error:
        return reject(str(error))
    data = store.read_range(container, blob, 0, info.size, etag=info.etag) if info.size else b""
    try:
        table = read_table(io.BytesIO(data), table_options, train_options, format=table_format(blob, data[:4]))
    except TableError as error:
        return reject(str(error))
    facts.update(partitions=len(table.series) + len(table.rejections), partitions_rejected=len(table.rejections))
    if not table.series:
        shown = "; ".join(f"{r.keys}: {r.problems[0].message}" for r in table.rejections[:SHOWN_REJECTIONS])
        return reject(f"none of the {len(table.rejections)} partitions can be trained, e.g. {shown}")
    layout = WorkLayout(job_id)
    settings.temp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="table-", dir=settings.temp_root) as folder:
        work = Path(folder)
        manifest = prepare_work(table, work, run_id=job_id, dataset=dataset, train=train_options)
        files = sorted(path for path in work.rglob("*") if path.is_file() and path.name != MANIFEST_NAME)
        store.upload_folder(settings.work_container, layout.prefix, work, files)
        store.upload_folder(settings.work_container, layout.prefix, work, [work / MANIFEST_NAME])  # last: complete
    return {"accepted": True, "blob": blob, "etag": info.etag, "dataset": dataset,
            "partitions_total": len(manifest.partitions), "partitions_rejected": len(table.rejections),
            "freq": manifest.freq, "horizon": manifest.horizon, "season_length": manifest.season_length}
