"""Prepare step: an uploaded table of any size becomes the training job's bucketed work folder.

    python -m forecast_job.prepare --table FILE [--format csv|parquet] --work DIR --run-id ID \
        --dataset NAME [--options JSON]

The compute side's first step (Azure ML: a command step before the parallel step; locally: the
local backend's run), not the Function App's: the app only reads a table's header. The table is
read in chunks (table.py) and each chunk's rows are spilled to one file per bucket (a hash of the
partition id), so memory holds a chunk, never the table; each bucket file is then sorted and its
partitions checked (gaps, duplicates, length) and written as the bucket's Parquet file
(manifest.py). A whole-table fault (unparseable dates at row 7,000,000, say) writes
`prepare.json` with `accepted: false` and the reason, which the app turns into a rejection of the
upload; exit code 3. `prepare.json` with `accepted: true` sums up the work folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .files import write_text_atomic
from .manifest import PREPARED, Manifest, bucket_count, bucket_of, write_bucket, write_work
from .naming import check_dataset
from .options import TableOptions, TrainOptions
from .table import (
    FREQ_SAMPLE,
    Plan,
    Rows,
    TableChunks,
    TableError,
    check_partitions,
    frequency_of,
    open_table,
    sort_rows,
)

log = logging.getLogger("forecast_job")
SPILL = ".spill"
REJECTED_EXIT = 3


class NothingToTrain(TableError):
    code = "no_trainable_partition"


@dataclass
class Spill:
    """One compressed Arrow stream per bucket under `folder`: (partition index, ds, y) rows."""

    folder: Path
    buckets: int
    pids: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    writers: dict[int, object] = field(default_factory=dict)

    def add(self, rows: Rows) -> None:
        import pyarrow as pa

        uniques, inverse = np.unique(rows.pid, return_inverse=True)
        for pid in uniques:
            if pid not in self.index:
                self.index[pid] = len(self.pids)
                self.pids.append(pid)
        numbers = np.fromiter((self.index[pid] for pid in uniques), np.int32, len(uniques))[inverse]
        buckets = np.fromiter((bucket_of(pid, self.buckets) for pid in uniques), np.int32, len(uniques))[inverse]
        for bucket in np.unique(buckets):
            mine = buckets == bucket
            batch = pa.record_batch({"pid": numbers[mine], "ds": rows.ds[mine], "y": rows.y[mine]})
            self._writer(int(bucket), batch.schema).write_batch(batch)

    def _writer(self, bucket: int, schema):
        import pyarrow as pa

        if bucket not in self.writers:
            self.folder.mkdir(parents=True, exist_ok=True)
            sink = pa.OSFile(str(self.folder / f"{bucket:04d}.arrow"), "wb")
            self.writers[bucket] = (sink, pa.ipc.new_stream(sink, schema, options=pa.ipc.IpcWriteOptions(
                compression="lz4")))
        return self.writers[bucket][1]

    def close(self) -> None:
        """Finish every stream (again: nothing; the spill can be read from then on)."""
        for sink, writer in self.writers.values():
            writer.close()
            sink.close()
        self.writers.clear()

    def rows(self, bucket: int) -> Rows:
        import pyarrow as pa

        path = self.folder / f"{bucket:04d}.arrow"
        if not path.exists():
            return Rows.concat([])
        with pa.OSFile(str(path), "rb") as source:
            table = pa.ipc.open_stream(source).read_all()
        names = np.asarray(self.pids, dtype=object)[table.column("pid").to_numpy()]
        return Rows(names, table.column("ds").to_numpy(), table.column("y").to_numpy(), np.zeros(len(names), np.int64))


def estimated_rows(chunks: TableChunks, source: Path) -> int:
    """Parquet knows its row count; a CSV's is its size over the length of its first lines."""
    if chunks.kind == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(source).metadata.num_rows
    with open(source, "rb") as handle:
        head = handle.read(1 << 20)
    lines = max(head.count(b"\n"), 1)
    return int(source.stat().st_size / (len(head) / lines))


def prepare(source: Path, work: Path, *, run_id: str, dataset: str, options: TableOptions | None = None,
            train: TrainOptions | None = None, format: str | None = None, buckets: int | None = None) -> Manifest:
    """Stream `source` into `work` (bucket files, rejections, manifest); raise TableError for a
    fault of the whole table."""
    options, train, work = options or TableOptions(), train or TrainOptions(), Path(work)
    check_dataset(dataset)
    chunks, columns, normalize = open_table(source, options, format)
    buckets = buckets or bucket_count(estimated_rows(chunks, Path(source)))
    spill = Spill(work / SPILL, buckets)
    rows = 0
    try:
        for first, frame in chunks:
            spill.add(normalize(first, frame))
            rows += len(frame)
        spill.close()
        plan = Plan.for_table(options.freq or _sampled_frequency(spill), options, train)
        entries, rejections = [], []
        for bucket in range(buckets):
            sorted_rows, bounds = sort_rows(spill.rows(bucket))
            accepted, rejected = check_partitions(sorted_rows, bounds, normalize.keys, plan)
            if accepted:
                entries += write_bucket(work, bucket, accepted)
            rejections += [r.as_dict() for r in rejected]
    finally:
        spill.close()
        shutil.rmtree(spill.folder, ignore_errors=True)
    if not entries:
        shown = "; ".join(f"{r['keys']}: {r['problems'][0]['message']}" for r in rejections[:3])
        raise NothingToTrain(f"none of the {len(rejections)} partitions can be trained, e.g. {shown}")
    manifest = Manifest(run_id=run_id, dataset=dataset, partition_columns=columns.keys, freq=plan.freq,
                        season_length=plan.season_length, horizon=plan.horizon, train=train, buckets=buckets,
                        ignored_columns=columns.ignored, rows=rows, partitions=tuple(entries))
    return write_work(work, manifest, rejections)


def _sampled_frequency(spill: Spill) -> str:
    """The frequency of FREQ_SAMPLE whole partitions, taken from the first buckets that hold them."""
    samples: list[Rows] = []
    partitions = 0
    for bucket in range(spill.buckets):
        rows = spill.rows(bucket)
        samples.append(rows)
        partitions += len(np.unique(rows.pid))
        if partitions >= FREQ_SAMPLE:
            break
    return frequency_of(*sort_rows(Rows.concat(samples)))


def summary(manifest: Manifest, rejections: int, seconds: float) -> dict:
    return {"accepted": True, "partitions": len(manifest.partitions), "rejected": rejections,
            "buckets": manifest.buckets, "rows": manifest.rows, "freq": manifest.freq, "horizon": manifest.horizon,
            "season_length": manifest.season_length, "partition_columns": list(manifest.partition_columns),
            "ignored_columns": list(manifest.ignored_columns), "seconds": round(seconds, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", type=Path, help="the uploaded table (CSV or Parquet), a local file")
    source.add_argument("--table-url", help="the upload's blob URL, read with this job's identity (Azure ML)")
    parser.add_argument("--etag", help="with --table-url: the version the app validated (a newer upload fails)")
    parser.add_argument("--format", choices=("csv", "parquet"), help="default: by content, else by extension")
    parser.add_argument("--work", type=Path, required=True, help="the work folder to write")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--options", default="{}", help='JSON: {"table": {...TableOptions}, "train": {...}}')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    given = json.loads(args.options)
    options, train = TableOptions(**given.get("table", {})), TrainOptions(**given.get("train", {}))
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    table = args.table or download(args.table_url, args.etag, args.work / f".upload.{args.format or 'table'}")
    try:
        manifest = prepare(table, args.work, run_id=args.run_id, dataset=args.dataset, options=options,
                           train=train, format=args.format or table_format(table))
    except TableError as error:
        write_text_atomic(args.work / PREPARED, json.dumps({"accepted": False, "code": error.code,
                                                            "reason": str(error)}))
        log.error("table refused: %s", error)
        return REJECTED_EXIT
    finally:
        if args.table_url:
            table.unlink(missing_ok=True)
    rejected = len(json.loads((args.work / "rejections.json").read_text()))
    write_text_atomic(args.work / PREPARED, json.dumps(summary(manifest, rejected, time.perf_counter() - started)))
    log.info("prepared %d partitions in %d buckets (%d rejected)", len(manifest.partitions), manifest.buckets,
             rejected)
    return 0


def download(url: str, etag: str | None, target: Path) -> Path:
    """The upload, streamed to local disk with DefaultAzureCredential (the job's managed identity),
    only if it is still the version `etag` names."""
    from azure.core import MatchConditions
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobClient

    blob = BlobClient.from_blob_url(url, credential=DefaultAzureCredential())
    pin = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
    with open(target, "wb") as handle:
        blob.download_blob(max_concurrency=4, **pin).readinto(handle)
    return target


def table_format(path: Path) -> str:
    """By content first (Parquet's magic bytes), else by extension, else CSV."""
    with open(path, "rb") as handle:
        if handle.read(4) == b"PAR1":
            return "parquet"
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"


if __name__ == "__main__":
    sys.exit(main())
