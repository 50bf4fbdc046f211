"""The training job's input contract: a work folder the compute job's prepare step writes.

    <work>/manifest.json                          this file's `Manifest`
    <work>/rejections.json                        partitions refused before training, with reasons
    <work>/partitions/MLTable                     the bucketed table, as Azure ML reads it
    <work>/partitions/bucket=<NNNN>/data.parquet  many series: columns partition (id), ds, y

Partitions are grouped into buckets (a hash of the partition id) so that a 10,000-partition table
is a few dozen files, not 10,000: each bucket is one file to read, one unit of training work (one
Azure ML mini-batch, `partition_keys=["bucket"]`) and one set of results. Rows are sorted by
partition, then timestamp. Versioned like scoring_job's manifest: a reader refuses a schema
version it does not know. Folder names carry only numbers and the rows only partition ids (a hash
of the key values, naming.py), because key values may hold any character; the manifest maps ids
back to key values. No pandas here (the Function App reads manifests); writers import pyarrow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .files import write_text_atomic
from .naming import check_dataset
from .options import TrainOptions, validation_problems

if TYPE_CHECKING:
    from .table import ValidatedTable

SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
PREPARED = "prepare.json"  # the prepare step's summary, or its refusal of the table (prepare.py)
BUNDLE = "models.bin"  # a trained bucket's pickles, back to back (train.py)
PARTITIONS_FILE = re.compile(r"^partitions-(\d+)\.json$")  # a trained bucket's records, `count` of them
REJECTIONS_NAME = "rejections.json"
PARTITIONS_FOLDER = "partitions"
BUCKET_KEY = "bucket"  # the Azure ML parallel job's partition_keys: ["bucket"]
PARTITION_COLUMN = "partition"  # a row's partition id in a bucket file
DATA_FILE = "data.parquet"
ROWS_PER_BUCKET = 250_000  # a bucket file of ~5 MB: enough partitions per file, enough files to spread
MIN_BUCKETS = 8
MAX_BUCKETS = 4096


class ManifestError(ValueError):
    """manifest.json is missing, malformed, or of an unknown schema version."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartitionEntry(_Strict):
    id: str = Field(pattern=r"^p[0-9a-f]{16}$")
    keys: dict[str, str]
    observations: int = Field(gt=0)
    last_timestamp: str  # ISO 8601; forecasts start one period later
    bucket: int = Field(ge=0)
    filled: int = Field(default=0, ge=0)  # periods or cells the `fill_gaps` option filled
    short_history: str = ""  # why it is trained without a holdout (table.short_history_reason); "" if it is not


class Manifest(_Strict):
    schema_version: Literal[2] = SCHEMA_VERSION
    run_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    dataset: str
    partition_columns: tuple[str, ...] = Field(min_length=1)
    freq: str
    season_length: int = Field(gt=0)
    horizon: int = Field(gt=0)
    train: TrainOptions = TrainOptions()
    buckets: int = Field(gt=0)
    ignored_columns: tuple[str, ...] = ()
    rows: int = Field(default=0, ge=0)  # rows of the uploaded table
    partitions: tuple[PartitionEntry, ...]

    def entry(self, pid: str) -> PartitionEntry:
        return self._by_id[pid]

    @cached_property
    def _by_id(self) -> dict[str, PartitionEntry]:
        return {entry.id: entry for entry in self.partitions}

    def in_bucket(self, bucket: int) -> list[PartitionEntry]:
        return self._by_bucket.get(bucket, [])

    @cached_property
    def _by_bucket(self) -> dict[int, list[PartitionEntry]]:
        grouped: dict[int, list[PartitionEntry]] = {}
        for entry in self.partitions:
            grouped.setdefault(entry.bucket, []).append(entry)
        return grouped

    @classmethod
    def load(cls, work: Path) -> Manifest:
        path = Path(work) / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(f"no {MANIFEST_NAME} in {work}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            found = data.get("schema_version") if isinstance(data, dict) else None
            if found != SCHEMA_VERSION:  # refuse before validating: another version means other fields
                raise ManifestError(f"unsupported manifest schema_version {found!r}; this job reads {SCHEMA_VERSION}")
            return cls.model_validate(data)
        except json.JSONDecodeError as error:
            raise ManifestError(f"{path} is not valid JSON: {error}") from None
        except ValidationError as error:
            raise ManifestError(f"invalid manifest: {validation_problems(error)}") from None

    def save(self, work: Path) -> Path:
        return write_text_atomic(Path(work) / MANIFEST_NAME, self.model_dump_json(indent=1))


def partitions_file_name(count: int) -> str:
    return f"partitions-{count}.json"


def finished_units(names: Iterable[str]) -> int:
    """Partitions trained, from the names of the buckets' partitions files alone (what progress reads:
    no file is opened)."""
    return sum(int(found.group(1)) for name in names if (found := PARTITIONS_FILE.match(name.rsplit("/", 1)[-1])))


def bucket_count(rows: int) -> int:
    """Buckets for a table of about `rows` rows."""
    return max(MIN_BUCKETS, min(MAX_BUCKETS, -(-rows // ROWS_PER_BUCKET)))


def bucket_of(pid: str, buckets: int) -> int:
    """The bucket of a partition: its id's hash (uniform), so buckets hold alike numbers of partitions."""
    return int(pid[1:9], 16) % buckets


def bucket_file(work: Path, bucket: int) -> Path:
    return Path(work) / PARTITIONS_FOLDER / f"{BUCKET_KEY}={bucket:04d}" / DATA_FILE


def mltable_spec() -> dict:
    """The MLTable over partitions/: Azure ML reads every data.parquet and takes the `bucket` column
    from the folder name, so `partition_keys=["bucket"]` gives run() one bucket (many series) per
    call. Written as JSON, which is also YAML, so no YAML library is needed."""
    return {
        "type": "mltable",
        "paths": [{"pattern": f"./{BUCKET_KEY}=*/{DATA_FILE}"}],
        "transformations": [
            {"read_parquet": {"include_path_column": True}},
            {"extract_columns_from_partition_format": {
                "partition_format": f"{BUCKET_KEY}={{{BUCKET_KEY}}}/{{file_name}}.parquet"}},
            {"drop_columns": ["Path", "file_name"]},
        ],
    }


def write_bucket(work: Path, bucket: int, series: list) -> list[PartitionEntry]:
    """One bucket's file (rows sorted by partition, then timestamp) and its partitions' entries."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    series = sorted(series, key=lambda s: s.partition_id)
    target = bucket_file(work, bucket)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{DATA_FILE}.partial")
    columns = {PARTITION_COLUMN: pa.array(np.repeat([s.partition_id for s in series], [len(s.y) for s in series]),
                                          pa.string()),
               "ds": pa.array(np.concatenate([s.ds for s in series]) if series else np.empty(0, "datetime64[ns]")),
               "y": pa.array(np.concatenate([s.y for s in series]) if series else np.empty(0))}
    pq.write_table(pa.table(columns), partial)
    partial.replace(target)
    return [PartitionEntry(id=s.partition_id, keys=s.keys, observations=len(s.y), bucket=bucket,
                           last_timestamp=str(s.ds[-1].astype("datetime64[s]")), filled=s.filled,
                           short_history=s.short_history) for s in series]


def read_bucket(work: Path, bucket: int) -> dict[str, tuple]:
    """partition id -> (ds, y) of every series in a bucket file."""
    import pyarrow.parquet as pq

    table = pq.read_table(bucket_file(work, bucket))
    return split_bucket(table.column(PARTITION_COLUMN).to_numpy(zero_copy_only=False),
                        table.column("ds").to_numpy(), table.column("y").to_numpy())


def split_bucket(pids, ds, y) -> dict[str, tuple]:
    """Rows sorted by partition -> partition id -> (ds, y)."""
    import numpy as np

    if len(pids) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
    ends = np.append(starts[1:], len(pids))
    return {str(pids[a]): (ds[a:b], y[a:b]) for a, b in zip(starts, ends, strict=True)}


def write_work(work: Path, manifest: Manifest, rejections: list[dict]) -> Manifest:
    """The rejections, the MLTable, and the manifest last (its presence means the folder is complete)."""
    write_text_atomic(Path(work) / REJECTIONS_NAME, json.dumps(rejections, indent=1))
    write_text_atomic(Path(work) / PARTITIONS_FOLDER / "MLTable", json.dumps(mltable_spec(), indent=1))
    manifest.save(work)
    return manifest


def prepare_work(table: ValidatedTable, work: Path, *, run_id: str, dataset: str,
                 train: TrainOptions | None = None, buckets: int | None = None) -> Manifest:
    """The work folder of a table validated in memory (small tables, tests, benchmarks); prepare.py
    writes the same folder for a table of any size, streaming."""
    work = Path(work)
    rows = sum(len(s.y) for s in table.series)
    buckets = buckets or bucket_count(rows)
    grouped: dict[int, list] = {}
    for series in table.series:
        grouped.setdefault(bucket_of(series.partition_id, buckets), []).append(series)
    entries = [entry for bucket in sorted(grouped) for entry in write_bucket(work, bucket, grouped[bucket])]
    manifest = Manifest(run_id=run_id, dataset=check_dataset(dataset), partition_columns=table.partition_columns,
                        freq=table.freq, season_length=table.season_length, horizon=table.horizon,
                        train=train or TrainOptions(), buckets=buckets, ignored_columns=table.ignored_columns,
                        rows=rows, partitions=tuple(entries))
    return write_work(work, manifest, [r.as_dict() for r in table.rejections])


def load_rejections(work: Path) -> list[dict]:
    path = Path(work) / REJECTIONS_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
