"""validate_table: an uploaded table's header is checked here; the table itself goes to the compute side.

The Function App reads only what it must, whatever the table's size (memory and temp disk stay
those of a few hundred KiB): a Parquet file's footer (schema and row count) through ranged reads,
a CSV's first HEAD_BYTES (its header and first rows). What can be told from those is checked now
and a bad upload rejected with the reason, as a bad video is: bad options, missing columns,
partition keys that are not clear, non-numeric targets or unparseable dates in the first rows.
The rest (every row's dates and numbers, the partitions' gaps and lengths) is the compute job's
prepare step (forecast_job/prepare.py), which streams the table into bucket files; a whole-table
fault it finds is turned into a rejection by collect_results. The job's facts (the upload pinned
to its ETag, format, dataset, options) go to work/<job>/table.json for the compute job.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd

from forecast_job.gate import GateRule
from forecast_job.naming import check_dataset
from forecast_job.options import OptionsError, TableOptions, TrainOptions, options_from_metadata
from forecast_job.table import Columns, EmptyTable, Normalizer, TableError, choose_columns
from restyle.blob_reader import BlobReader
from restyle.storage import BlobStore

from ..rejection import reject_upload
from ..work_layout import WorkLayout

PARQUET_MAGIC = b"PAR1"
HEAD_BYTES = 256 * 1024


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
    return "parquet" if suffix in ("parquet", "pq") else "csv"


@dataclass(frozen=True)
class Header:
    format: str
    names: list[str]
    numeric: set[str]
    rows: int | None  # known for Parquet
    sample: pd.DataFrame  # the first rows, as the prepare step will read them


def read_header(store: BlobStore, container: str, blob: str, etag: str, size: int) -> Header:
    """Names, numeric columns and the first rows, from the footer or the head of the blob only."""
    import pyarrow.parquet as pq

    from forecast_job.table import TableChunks, UnreadableTable, numeric_columns

    head = store.read_range(container, blob, 0, min(size, HEAD_BYTES), etag=etag) if size else b""
    kind = table_format(blob, head)
    if kind == "parquet":
        try:
            parquet = pq.ParquetFile(BlobReader(store, container, blob, etag))
            first = next(parquet.iter_batches(batch_size=200), None)
        except (OSError, ValueError) as error:
            raise UnreadableTable(f"cannot read {PurePosixPath(blob).name} as PARQUET: {error}") from None
        sample = first.to_pandas() if first is not None else pd.DataFrame(columns=parquet.schema_arrow.names)
        rows = parquet.metadata.num_rows
    else:
        complete = head if len(head) == size else head[:head.rfind(b"\n") + 1]  # whole lines only
        buffer = io.BytesIO(complete)
        buffer.name = PurePosixPath(blob).name
        sample, rows = next(iter(TableChunks(buffer, "csv")), (0, pd.DataFrame()))[1], None
    return Header(kind, [str(name) for name in sample.columns], numeric_columns(sample), rows, sample)


def check_sample(header: Header, columns: Columns, options: TableOptions) -> None:
    """The first rows as the prepare step will read them: bad keys, dates or numbers there reject now.
    Day/month order is settled over the whole table by prepare, so such dates are not judged here."""
    if header.sample.empty:
        raise EmptyTable("the table has no rows")
    text = header.sample[columns.timestamp].astype("string").str.strip()
    slashed = text.str.match(r"^\d{1,2}[/.-]\d{1,2}[/.-]").fillna(False).any()
    if slashed and not options.date_format:
        return
    Normalizer(columns, options, dayfirst=None)(0, header.sample)


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
        train_options = train_options.model_copy(update={"gate": GateRule(metric=settings.gate_metric,
                                                                          threshold=settings.gate_threshold)})
        dataset = dataset_name(blob, metadata)
        header = read_header(store, container, blob, info.etag, info.size)
        columns = choose_columns(header.names, header.numeric, table_options)
        check_sample(header, columns, table_options)
    except (OptionsError, TableError, ValueError) as error:
        return reject(str(error))
    table = {"blob": blob, "etag": info.etag, "bytes": info.size, "format": header.format, "dataset": dataset,
             "rows": header.rows, "partition_columns": list(columns.keys), "ignored_columns": list(columns.ignored),
             "options": job_options(table_options, train_options)}
    store.write_json(settings.work_container, WorkLayout(job_id).table, table)
    return {"accepted": True, **{key: table[key] for key in ("blob", "etag", "dataset", "format", "rows", "bytes",
                                                               "partition_columns", "ignored_columns")}}


def job_options(table: TableOptions, train: TrainOptions) -> dict:
    """The options as the prepare step takes them (`--options`), defaults left out."""
    return {"table": table.model_dump(exclude_defaults=True, mode="json"),
            "train": train.model_dump(exclude_defaults=True, mode="json")}
