"""The model registry: every trained partition model as a version, with tags, metrics, an artifact
in blob storage, and a `production` alias. Lookups by tags (partition keys), versions and alias.

Stdlib only (no statsforecast, pandas or mlflow at import): the Function App's real-time forecast
endpoint imports it to find the production model of a request's partition keys.

Two implementations of one `Registry` protocol:
- `IndexRegistry` (default locally): a SQLite index, registering a whole run in one transaction.
  Measured (bench/many_models.py, 1,428 M3 models): 0.10 ms a model, against 37.7 ms a model for
  the same three calls (create model, create version, set alias) through MLflow's SQLite store,
  i.e. ~6 minutes per 10,000 models, and more against a remote tracking server. So local runs
  register into the index; the MLflow registry is the Azure ML workspace's registry (the same
  `register_many` call fills either).
- `MlflowRegistry` (mlflow_registry.py): the same lookups over MLflow's model registry.

Names: one registered model per partition, `<dataset>-<partition id>` (naming.py); each run that
trains it adds a version. Tags on every version: `dataset`, `run_id`, `partition_id`,
`model_type`, `flagged` ("true" for a seasonal-naive fallback nothing better could replace),
`key.<column>` for each partition key, `metric.<name>` for each metric, `baseline_artifact`,
`observations` (points fitted on) and `short_history` (why a short history was fitted with no
holdout; empty otherwise).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from .files import write_bytes_atomic
from .naming import model_name, partition_id

PRODUCTION = "production"
KEY_PREFIX = "key."
METRIC_PREFIX = "metric."


class ModelNotFound(LookupError):
    """No model (or no version, or no alias) matches the lookup."""


# --- Artifacts: where model files live. Locally a folder (or the Azure ML job's mounted output);
#     in Azure a blob container. Only put/get by a URI the registry records. A run's models are
#     bundled, a bucket of partitions to a file: a version's URI names its bytes in the bundle with
#     a `#bytes=<first>-<last>` fragment (the HTTP Range form), read with one ranged GET.

RANGE = "#bytes="


def with_range(uri: str, offset: int, length: int) -> str:
    """`uri` narrowed to `length` bytes at `offset`."""
    return f"{uri}{RANGE}{offset}-{offset + length - 1}"


def split_range(uri: str) -> tuple[str, tuple[int, int] | None]:
    """(the file's URI, (offset, length) or None for the whole file)."""
    base, found, span = uri.partition(RANGE)
    if not found:
        return uri, None
    first, _, last = span.partition("-")
    return base, (int(first), int(last) - int(first) + 1)


def read_file_range(path: Path, span: tuple[int, int] | None) -> bytes:
    if span is None:
        return path.read_bytes()
    with open(path, "rb") as handle:
        handle.seek(span[0])
        return handle.read(span[1])

class ArtifactStore(Protocol):
    def put(self, path: str, data: bytes) -> str:
        """Store `data` at `path` (relative, '/'-separated); return the URI to record."""

    def get(self, uri: str) -> bytes: ...


class FolderArtifacts:
    """A folder; URIs are file:// ones, or `uri_prefix` + path where the folder is a mount of
    storage with a name of its own (an Azure ML job's output: azureml://datastores/<ds>/paths/...)."""

    def __init__(self, root: Path, uri_prefix: str | None = None) -> None:
        self.root = Path(root).resolve()
        self.uri_prefix = uri_prefix.rstrip("/") + "/" if uri_prefix else None

    def put(self, path: str, data: bytes) -> str:
        written = write_bytes_atomic(self.root / path, data)
        return self.uri_prefix + path if self.uri_prefix else written.as_uri()

    def get(self, uri: str) -> bytes:
        uri, span = split_range(uri)
        if self.uri_prefix and uri.startswith(self.uri_prefix):
            return read_file_range(self.root / uri[len(self.uri_prefix):], span)
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise ValueError(f"{uri} is neither a file URI nor under {self.uri_prefix}")
        return read_file_range(Path(unquote(parsed.path)), span)


class BlobArtifacts:
    """Artifacts in a blob container (an azure.storage.blob ContainerClient, from the app's storage
    settings: managed identity in Azure, Azurite locally)."""

    def __init__(self, container_client, prefix: str = "") -> None:
        self.container = container_client
        self.prefix = prefix.strip("/")

    def put(self, path: str, data: bytes) -> str:
        name = f"{self.prefix}/{path}" if self.prefix else path
        blob = self.container.get_blob_client(name)
        blob.upload_blob(data, overwrite=True)
        return blob.url

    def get(self, uri: str) -> bytes:
        """`uri` is a blob URL this store returned: path-style (Azurite: /account/container/name) or
        host-style (Azure: /container/name)."""
        uri, span = split_range(uri)
        parts = unquote(urlparse(uri).path).lstrip("/").split("/")
        container = self.container.container_name
        if container not in parts:
            raise ValueError(f"{uri} is not in container {container}")
        name = "/".join(parts[parts.index(container) + 1:])
        offset, length = span or (0, None)
        return self.container.get_blob_client(name).download_blob(offset=offset, length=length).readall()


# --- Versions and the registry protocol.

@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    dataset: str
    partition_id: str
    run_id: str
    model_type: str
    keys: dict[str, str]
    metrics: dict[str, float]
    artifact: str
    baseline_artifact: str = ""
    flagged: bool = False
    last_timestamp: str = ""  # the last observation the model was fitted on (ISO 8601)
    freq: str = ""  # pandas frequency alias of the series
    created: float = 0.0
    aliases: tuple[str, ...] = ()
    observations: int = 0  # points the model was fitted on (0: registered before this was recorded)
    short_history: str = ""  # why it was fitted with no holdout (a short history); "" when it had one

    def tags(self) -> dict[str, str]:
        """The version's tags, as MLflow stores them (strings)."""
        tags = {"dataset": self.dataset, "run_id": self.run_id, "partition_id": self.partition_id,
                "model_type": self.model_type, "flagged": str(self.flagged).lower(),
                "baseline_artifact": self.baseline_artifact, "last_timestamp": self.last_timestamp,
                "freq": self.freq, "observations": str(self.observations), "short_history": self.short_history}
        tags.update({KEY_PREFIX + k: v for k, v in self.keys.items()})
        tags.update({METRIC_PREFIX + k: repr(float(v)) for k, v in self.metrics.items()})
        return tags


@dataclass(frozen=True)
class NewVersion:
    """What a run registers for one partition. The version number is the registry's next one, or
    `version` where the caller assigns it (publish does, from the production map, so that a
    registry with no cheap "next version" lookup, the Azure ML workspace, needs no read first)."""

    dataset: str
    run_id: str
    keys: dict[str, str]
    model_type: str
    metrics: dict[str, float]
    artifact: str
    baseline_artifact: str = ""
    flagged: bool = False
    last_timestamp: str = ""
    freq: str = ""
    partition_id: str = field(default="")
    observations: int = 0
    short_history: str = ""
    version: int | None = None

    def __post_init__(self) -> None:
        if not self.partition_id:
            object.__setattr__(self, "partition_id", partition_id(self.keys))

    @property
    def name(self) -> str:
        return model_name(self.dataset, self.partition_id)


class Registry(Protocol):
    def register_many(self, versions: Iterable[NewVersion]) -> list[ModelVersion]:
        """Register versions; idempotent per (name, run_id, flagged): a repeat returns the existing one."""

    def versions(self, name: str) -> list[ModelVersion]: ...

    def get(self, name: str, version: int) -> ModelVersion: ...

    def by_alias(self, name: str, alias: str = PRODUCTION) -> ModelVersion | None: ...

    def set_aliases(self, assignments: Iterable[tuple[str, int]], alias: str = PRODUCTION) -> None: ...

    def search(self, tags: Mapping[str, str], alias: str | None = None) -> list[ModelVersion]:
        """Versions whose tags include all of `tags` (with `alias`: only those holding it)."""


def find_production(registry: Registry, dataset: str, keys: Mapping[str, str]) -> ModelVersion:
    """The production model of one partition, from its key values (what the real-time endpoint does)."""
    found = registry.by_alias(model_name(dataset, partition_id(dict(keys))))
    if found is None:
        raise ModelNotFound(f"no production model for {dict(keys)} in dataset {dataset!r}")
    return found


def key_tags(keys: Mapping[str, str]) -> dict[str, str]:
    return {KEY_PREFIX + k: v for k, v in keys.items()}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, dataset TEXT NOT NULL, partition_id TEXT NOT NULL,
    run_id TEXT NOT NULL, model_type TEXT NOT NULL, keys TEXT NOT NULL, metrics TEXT NOT NULL,
    artifact TEXT NOT NULL, baseline_artifact TEXT NOT NULL, flagged INTEGER NOT NULL, last_timestamp TEXT NOT NULL,
    freq TEXT NOT NULL, created REAL NOT NULL, observations INTEGER NOT NULL DEFAULT 0,
    short_history TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (name, version), UNIQUE (name, run_id, flagged));
CREATE TABLE IF NOT EXISTS tags (name TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (name, version, key));
CREATE INDEX IF NOT EXISTS tags_by_value ON tags (key, value);
CREATE TABLE IF NOT EXISTS aliases (name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (name, alias));
"""
_COLUMNS = ("name", "version", "dataset", "partition_id", "run_id", "model_type", "keys", "metrics", "artifact",
            "baseline_artifact", "flagged", "last_timestamp", "freq", "created", "observations", "short_history")
_PLACES = ", ".join("?" * len(_COLUMNS))
# columns added after the first schema: an index file written before them gets them (with their defaults)
_ADDED_COLUMNS = {"observations": "INTEGER NOT NULL DEFAULT 0", "short_history": "TEXT NOT NULL DEFAULT ''"}


class IndexRegistry:
    """The registry as one SQLite file (WAL; safe for several readers and one writer at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(versions)")}
        with self._db:
            for column, kind in _ADDED_COLUMNS.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE versions ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self._db.close()

    def register_many(self, versions: Iterable[NewVersion]) -> list[ModelVersion]:
        registered = []
        now = time.time()
        with self._lock, self._db:
            for new in versions:
                existing = self._db.execute("SELECT version FROM versions WHERE name=? AND run_id=? AND flagged=?",
                                            (new.name, new.run_id, int(new.flagged))).fetchone()
                if existing:
                    registered.append(self._get(new.name, existing[0]))
                    continue
                version = new.version or self._db.execute(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name=?", (new.name,)).fetchone()[0]
                record = ModelVersion(new.name, version, new.dataset, new.partition_id, new.run_id, new.model_type,
                                      dict(new.keys), dict(new.metrics), new.artifact, new.baseline_artifact,
                                      new.flagged, new.last_timestamp, new.freq, now,
                                      observations=new.observations, short_history=new.short_history)
                self._db.execute(f"INSERT INTO versions ({', '.join(_COLUMNS)}) VALUES ({_PLACES})",
                                 (record.name, version, record.dataset, record.partition_id, record.run_id,
                                  record.model_type, json.dumps(record.keys), _dump_metrics(record.metrics),
                                  record.artifact, record.baseline_artifact, int(record.flagged),
                                  record.last_timestamp, record.freq, now, record.observations, record.short_history))
                self._db.executemany("INSERT INTO tags VALUES (?, ?, ?, ?)",
                                     [(record.name, version, k, v) for k, v in record.tags().items()])
                registered.append(record)
        return registered

    def _rows(self, where: str, params: tuple) -> list[ModelVersion]:
        rows = self._db.execute(f"SELECT {', '.join('v.' + c for c in _COLUMNS)}, "
                                "(SELECT group_concat(alias) FROM aliases a "
                                "WHERE a.name=v.name AND a.version=v.version) "
                                f"FROM versions v WHERE {where} ORDER BY v.name, v.version", params).fetchall()
        return [ModelVersion(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), _load_metrics(r[7]), r[8], r[9],
                             bool(r[10]), r[11], r[12], r[13], tuple(sorted(r[16].split(","))) if r[16] else (),
                             observations=r[14], short_history=r[15])
                for r in rows]

    def _get(self, name: str, version: int) -> ModelVersion:
        found = self._rows("v.name=? AND v.version=?", (name, version))
        if not found:
            raise ModelNotFound(f"model {name} has no version {version}")
        return found[0]

    def get(self, name: str, version: int) -> ModelVersion:
        with self._lock:
            return self._get(name, version)

    def versions(self, name: str) -> list[ModelVersion]:
        with self._lock:
            return self._rows("v.name=?", (name,))

    def by_alias(self, name: str, alias: str = PRODUCTION) -> ModelVersion | None:
        with self._lock:
            found = self._rows("EXISTS (SELECT 1 FROM aliases a WHERE a.name=v.name AND a.version=v.version "
                               "AND a.alias=?) AND v.name=?", (alias, name))
        return found[0] if found else None

    def set_aliases(self, assignments: Iterable[tuple[str, int]], alias: str = PRODUCTION) -> None:
        with self._lock, self._db:
            self._db.executemany("INSERT INTO aliases VALUES (?, ?, ?) ON CONFLICT (name, alias) "
                                 "DO UPDATE SET version=excluded.version",
                                 [(name, alias, version) for name, version in assignments])

    def search(self, tags: Mapping[str, str], alias: str | None = None) -> list[ModelVersion]:
        clauses = ["EXISTS (SELECT 1 FROM tags t WHERE t.name=v.name AND t.version=v.version AND t.key=? "
                   "AND t.value=?)"] * len(tags)
        params: list = [item for pair in tags.items() for item in pair]
        if alias is not None:
            clauses.append("EXISTS (SELECT 1 FROM aliases a WHERE a.name=v.name AND a.version=v.version AND a.alias=?)")
            params.append(alias)
        with self._lock:
            return self._rows(" AND ".join(clauses) or "1", tuple(params))


def _dump_metrics(metrics: Mapping[str, float]) -> str:
    return json.dumps({k: (float(v) if math.isfinite(v) else str(v)) for k, v in metrics.items()})


def _load_metrics(text: str) -> dict[str, float]:
    return {k: float(v) for k, v in json.loads(text).items()}
