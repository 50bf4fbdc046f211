"""The training job's input contract: a work folder the Function App (or the CLI) prepares.

    <work>/manifest.json                         this file's `Manifest`
    <work>/rejections.json                       partitions refused before training, with reasons
    <work>/partitions/MLTable                    the partitioned table, as Azure ML reads it
    <work>/partitions/partition=<id>/data.parquet  one series: columns ds (timestamp), y (float)

Versioned like scoring_job's manifest: a reader refuses a schema version it does not know. The
partition folder names carry only the partition id (a hash of the key values, naming.py), because
key values may hold any character and Azure ML's partition format reads values from paths; the
manifest maps ids back to key values. No pandas here (the Function App reads manifests);
`prepare_work` imports pyarrow when called.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .files import write_text_atomic
from .naming import check_dataset
from .options import TrainOptions, validation_problems

if TYPE_CHECKING:
    from .table import ValidatedTable

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
REJECTIONS_NAME = "rejections.json"
PARTITIONS_FOLDER = "partitions"
PARTITION_KEY = "partition"  # the Azure ML parallel job's partition_keys: ["partition"]
DATA_FILE = "data.parquet"


class ManifestError(ValueError):
    """manifest.json is missing, malformed, or of an unknown schema version."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartitionEntry(_Strict):
    id: str = Field(pattern=r"^p[0-9a-f]{16}$")
    keys: dict[str, str]
    observations: int = Field(gt=0)
    last_timestamp: str  # ISO 8601; forecasts start one period later
    short_history: str = ""  # why it is trained without a holdout (table.short_history_reason); "" if it is not


class Manifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    dataset: str
    partition_columns: tuple[str, ...] = Field(min_length=1)
    freq: str
    season_length: int = Field(gt=0)
    horizon: int = Field(gt=0)
    train: TrainOptions = TrainOptions()
    partitions: tuple[PartitionEntry, ...]

    def entry(self, pid: str) -> PartitionEntry:
        return self._by_id[pid]

    @cached_property
    def _by_id(self) -> dict[str, PartitionEntry]:
        return {entry.id: entry for entry in self.partitions}

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


def partition_file(work: Path, pid: str) -> Path:
    return Path(work) / PARTITIONS_FOLDER / f"{PARTITION_KEY}={pid}" / DATA_FILE


def mltable_spec() -> dict:
    """The MLTable over partitions/: Azure ML reads every data.parquet and takes the `partition`
    column from the folder name, so `partition_keys=["partition"]` gives run() one series per call.
    Written as JSON, which is also YAML, so no YAML library is needed."""
    return {
        "type": "mltable",
        "paths": [{"pattern": f"./{PARTITION_KEY}=*/{DATA_FILE}"}],
        "transformations": [
            {"read_parquet": {"include_path_column": True}},
            {"extract_columns_from_partition_format": {
                "partition_format": f"{PARTITION_KEY}={{{PARTITION_KEY}}}/{{file_name}}.parquet"}},
            {"drop_columns": ["Path", "file_name"]},
        ],
    }


def prepare_work(table: ValidatedTable, work: Path, *, run_id: str, dataset: str,
                 train: TrainOptions | None = None) -> Manifest:
    """Write the work folder for a validated table: one Parquet file per accepted partition, the
    rejections, the MLTable, and the manifest last (its presence means the folder is complete)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    work = Path(work)
    train = train or TrainOptions()
    entries = []
    for series in table.series:
        target = partition_file(work, series.partition_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{DATA_FILE}.partial")
        pq.write_table(pa.table({"ds": series.ds, "y": series.y}), partial)
        partial.replace(target)
        entries.append(PartitionEntry(id=series.partition_id, keys=series.keys, observations=len(series.y),
                                      last_timestamp=str(series.ds[-1].astype("datetime64[s]")),
                                      short_history=series.short_history))
    write_text_atomic(work / REJECTIONS_NAME, json.dumps([r.as_dict() for r in table.rejections], indent=1))
    write_text_atomic(work / PARTITIONS_FOLDER / "MLTable", json.dumps(mltable_spec(), indent=1))
    manifest = Manifest(run_id=run_id, dataset=check_dataset(dataset), partition_columns=table.partition_columns,
                        freq=table.freq, season_length=table.season_length, horizon=table.horizon, train=train,
                        partitions=tuple(entries))
    manifest.save(work)
    return manifest


def load_rejections(work: Path) -> list[dict]:
    path = Path(work) / REJECTIONS_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
