"""A dataset's production map: which model version serves each partition, and where its bytes are.

    <models>/<dataset>/production.json

One JSON document per dataset, rewritten by each run's publish step: partition id -> the serving
version (name, number, model type, flags, metrics, the last timestamp it was fitted on, and its
artifact URI with the byte range in the run's bundle), plus the highest version registered for
the partition (the next run's number). Serving (the Function App's `POST /api/forecast`, the Azure
ML online endpoint) reads only this file and the artifacts, with its own storage identity, cached
by ETag: a request's partitions resolve in one lookup, with no registry call, and a model
registered after a deployment is served as soon as the map names it. The registry (the SQLite
index locally, the Azure ML workspace's model assets in Azure) stays the record of every version;
the map is the production alias, which the workspace does not have (Azure ML's MLflow support
matrix lists no aliases and no search by tag: MicrosoftDocs/azure-docs,
articles/machine-learning/how-to-manage-models-mlflow.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from .naming import check_dataset
from .registry import ModelVersion

SCHEMA_VERSION = 1
MAP_NAME = "production.json"


def map_path(dataset: str) -> str:
    """Where a dataset's map lives, relative to the models root."""
    return f"{check_dataset(dataset)}/{MAP_NAME}"


@dataclass
class ProductionMap:
    dataset: str
    run_id: str = ""  # the run that wrote it
    partitions: dict[str, ModelVersion] = field(default_factory=dict)  # partition id -> serving version
    latest: dict[str, int] = field(default_factory=dict)  # partition id -> highest version registered

    def next_version(self, pid: str) -> int:
        return self.latest.get(pid, 0) + 1

    def to_json(self) -> str:
        return json.dumps({"schema_version": SCHEMA_VERSION, "dataset": self.dataset, "run_id": self.run_id,
                           "partitions": {pid: {**_finite(asdict(v)), "latest_version": self.latest.get(pid, v.version)}
                                          for pid, v in sorted(self.partitions.items())},
                           "unserved_versions": {pid: n for pid, n in sorted(self.latest.items())
                                                 if pid not in self.partitions}}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ProductionMap:
        data = json.loads(text)
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported production map schema_version {data.get('schema_version')!r}")
        partitions, latest = {}, dict(data.get("unserved_versions", {}))
        for pid, entry in data["partitions"].items():
            latest[pid] = entry.pop("latest_version")
            entry["aliases"] = tuple(entry.get("aliases", ()))
            entry["metrics"] = {k: (math.nan if v is None else float(v)) for k, v in entry["metrics"].items()}
            partitions[pid] = ModelVersion(**entry)
        return cls(data["dataset"], data.get("run_id", ""), partitions, latest)

    def updated(self, run_id: str, registered: Iterable[ModelVersion], serving: Mapping[str, ModelVersion]
                ) -> ProductionMap:
        """This map after a run: every version it registered counted, `serving` (partition id ->
        version) in production; partitions the run did not touch keep their version."""
        latest = dict(self.latest)
        for version in registered:
            latest[version.partition_id] = max(latest.get(version.partition_id, 0), version.version)
        return ProductionMap(self.dataset, run_id, {**self.partitions, **serving}, latest)


def _finite(entry: dict) -> dict:
    """NaN metrics as null, so the map is strict JSON any reader takes."""
    entry["metrics"] = {k: (v if math.isfinite(v) else None) for k, v in entry["metrics"].items()}
    entry["aliases"] = list(entry["aliases"])
    return entry


class MapRegistry:
    """The gate's registry for one run: champions and the version numbers come from the previous
    production map (no lookup per partition), new versions are registered in `record` (the index,
    or the Azure ML workspace) with those numbers, and the production moves make the new map."""

    def __init__(self, record, previous: ProductionMap) -> None:
        self.record, self.previous = record, previous
        self._champions = {version.name: version for version in previous.partitions.values()}
        self._next: dict[str, int] = {}
        self._registered: dict[tuple[str, int], ModelVersion] = {}
        self.serving: dict[str, ModelVersion] = {}  # partition id -> its version after this run's gate
        self._moved: dict[str, ModelVersion] = {}  # the same by model name

    def register_many(self, versions: Iterable) -> list[ModelVersion]:
        from dataclasses import replace

        numbered = []
        for new in versions:
            number = self._next.get(new.partition_id) or self.previous.next_version(new.partition_id)
            self._next[new.partition_id] = number + 1
            numbered.append(replace(new, version=number))
        registered = self.record.register_many(numbered)
        self._registered.update({(v.name, v.version): v for v in registered})
        return registered

    def by_alias(self, name: str, alias: str = "production") -> ModelVersion | None:
        """After this run's moves, the version they set; before, the previous map's (the champion)."""
        return self._moved.get(name) or self._champions.get(name)

    def set_aliases(self, assignments: Iterable[tuple[str, int]], alias: str = "production") -> None:
        assignments = list(assignments)
        for name, number in assignments:
            version = self._registered.get((name, number))
            if version is None:
                raise LookupError(f"{name} v{number} was not registered by this run")
            self.serving[version.partition_id] = self._moved[name] = version
        set_record = getattr(self.record, "set_aliases", None)
        if set_record is not None:
            set_record(assignments, alias)

    def result(self, run_id: str) -> ProductionMap:
        return self.previous.updated(run_id, self._registered.values(), self.serving)


# --- reading maps where they are served -------------------------------------------------------

class FolderMaps:
    """Maps under a local models root (tests, a local run's folder): the file's size and mtime are its ETag."""

    def __init__(self, root) -> None:
        from pathlib import Path

        self.root = Path(root)

    def fetch(self, dataset: str, etag: str | None) -> tuple[str, bytes] | None:
        """(etag, content), None when unchanged since `etag`; FileNotFoundError when there is none."""
        path = self.root / map_path(dataset)
        stat = path.stat()
        current = f"{stat.st_mtime_ns}-{stat.st_size}"
        return None if current == etag else (current, path.read_bytes())


class ContainerMaps:
    """Maps in a blob container (an azure.storage.blob ContainerClient with the reader's own identity:
    the Function App's, the online endpoint's), under `prefix` (the work container's `models/`).
    A re-read is a conditional GET (If-None-Match): unchanged, it moves no bytes."""

    def __init__(self, container_client, prefix: str = "models/") -> None:
        self.container, self.prefix = container_client, prefix

    def fetch(self, dataset: str, etag: str | None) -> tuple[str, bytes] | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        blob = self.container.get_blob_client(self.prefix + map_path(dataset))
        condition = {"etag": etag, "match_condition": MatchConditions.IfModified} if etag else {}
        try:
            stream = blob.download_blob(**condition)
        except ResourceNotFoundError:
            raise FileNotFoundError(f"no production map for dataset {dataset!r}") from None
        except ResourceModifiedError:  # 304 Not Modified, as azure-core reports it for IfModified
            return None
        return stream.properties.etag, stream.readall()


class ProductionMaps:
    """Each dataset's map, read once and then revalidated (by ETag) at most every `refresh_seconds`:
    a promotion is served within that long, and between revalidations a request costs a dict lookup."""

    def __init__(self, source, refresh_seconds: float = 1.0, clock=None) -> None:
        import threading
        import time

        self.source, self.refresh_seconds = source, refresh_seconds
        self._clock = clock or time.monotonic
        self._maps: dict[str, tuple[str, ProductionMap, float]] = {}  # dataset -> (etag, map, checked at)
        self._lock = threading.Lock()

    def get(self, dataset: str) -> ProductionMap | None:
        """The dataset's current map, None if it has none."""
        now = self._clock()
        with self._lock:
            known = self._maps.get(dataset)
        if known is not None and now - known[2] < self.refresh_seconds:
            return known[1]
        try:
            fetched = self.source.fetch(dataset, known[0] if known else None)
        except FileNotFoundError:
            return None
        etag, current = (known[0], known[1]) if fetched is None else (fetched[0], ProductionMap.from_json(fetched[1]))
        with self._lock:
            self._maps[dataset] = (etag, current, now)
        return current
