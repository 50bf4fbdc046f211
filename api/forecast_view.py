"""What the jobs page's forecast view of a finished table job reads (blocking storage calls):

- `partition_list(store, job, query, status, limit)`: the gate's summary (counts: passed, fallback,
  short history, champion kept, rejected, failed) and the partitions whose keys match `query`, each
  with its status and reason, from the run's gate report;
- `partition_forecast(store, job, partition_id)`: one partition's history, forecast and interval
  bounds, from the run's history and forecast Parquet (output/many-models/<dataset>/...).

Parquet is read with pyarrow, filtered to the one partition; the decoded tables of the latest
runs are cached by blob ETag, so clicking through partitions reads each file once.
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict

from restyle.storage import BlobNotFound, BlobStore

from .errors import ApiError

STATUSES = ("passed", "fallback", "short_history", "champion", "rejected", "failed")
MAX_LIMIT = 200
CACHED_FILES = 8


def _outputs(job: dict) -> dict[str, str]:
    output = job.get("output") or {}
    if job.get("pipeline") != "many_models" or job.get("status") != "Completed" or not output.get("outputs"):
        raise ApiError(409, "no_forecasts", f"job {job['id']} is not a finished table job with forecasts")
    return output["outputs"]


def _split(location: str) -> tuple[str, str]:
    container, _, prefix = location.partition("/")
    return container, prefix


def _gate_report(store: BlobStore, job: dict) -> dict:
    container, prefix = _split(_outputs(job)["gate"])
    try:
        return store.read_json(container, prefix + "gate_report.json")
    except BlobNotFound:
        raise ApiError(404, "no_gate_report", f"job {job['id']} has no gate report in {container}/{prefix}") from None


def _status(row: dict) -> str:
    if row.get("short_history"):
        return "short_history"
    if row["action"] == "promote_baseline":
        return "fallback"
    return "passed" if row["passed"] else "champion"


def _matches(keys: dict[str, str], pid: str, words: list[str]) -> bool:
    text = " ".join([pid, *(f"{k}={v}" for k, v in keys.items())]).lower()
    return all(word in text for word in words)


def partition_list(store: BlobStore, job: dict, query: str = "", status: str | None = None,
                   limit: int = 50) -> dict:
    """The gate's counts and the matching partitions (every word of `query` in the keys or id)."""
    if status and status not in STATUSES:
        raise ApiError(400, "invalid_status", f"status must be one of {', '.join(STATUSES)}; got {status!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "invalid_limit", f"limit must be from 1 to {MAX_LIMIT}; got {limit}")
    report = _gate_report(store, job)
    rows = [{"partition_id": row["partition_id"], "keys": row["keys"], "status": _status(row),
             "reason": row["reason"], "observations": row.get("observations") or None}
            for row in report["partitions"]]
    rows += [{"partition_id": r["partition_id"], "keys": r["keys"], "status": "rejected",
              "reason": "; ".join(p["message"] for p in r["problems"]), "observations": None}
             for r in report["rejected_partitions"]]
    rows += [{"partition_id": r["partition_id"], "keys": r["keys"], "status": "failed", "reason": r.get("error") or "",
              "observations": None} for r in report["failed_partitions"]]
    counts = {name: sum(1 for row in rows if row["status"] == name) for name in STATUSES}
    words = query.lower().split()
    found = [row for row in rows if (not status or row["status"] == status)
             and _matches(row["keys"], row["partition_id"], words)]
    found.sort(key=lambda row: sorted(row["keys"].items()))
    return {"dataset": report["dataset"], "run_id": report["run_id"], "rule": report["rule"],
            "total": len(rows), "counts": counts, "matches": len(found), "partitions": found[:limit]}


class _Tables:
    """The latest few Parquet files, decoded, by (container, name, etag)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._tables: OrderedDict[tuple[str, str, str], object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, store: BlobStore, container: str, name: str):
        import pyarrow.parquet as pq

        key = (container, name, store.info(container, name).etag)
        with self._lock:
            if key in self._tables:
                self._tables.move_to_end(key)
                return self._tables[key]
        table = pq.read_table(io.BytesIO(store.read_bytes(container, name)))
        with self._lock:
            self._tables[key] = table
            while len(self._tables) > self.size:
                self._tables.popitem(last=False)
        return table


_TABLES = _Tables(CACHED_FILES)


def _rows(store: BlobStore, location: str, partition_id: str) -> list[dict]:
    """The rows of one partition, from every Parquet file under `location` (container/prefix)."""
    import pyarrow.compute as pc

    container, prefix = _split(location)
    rows: list[dict] = []
    for name in sorted(n for n in store.list_names(container, prefix) if n.endswith(".parquet")):
        table = _TABLES.get(store, container, name)
        rows.extend(table.filter(pc.equal(table["partition_id"], partition_id)).to_pylist())
    return sorted(rows, key=lambda row: row["ds"])


def _value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else value


def partition_forecast(store: BlobStore, job: dict, partition_id: str) -> dict:
    """One partition: its history (ds, y), forecast steps (ds, forecast, lo_/hi_ per level) and model."""
    outputs = _outputs(job)
    if not partition_id:
        raise ApiError(400, "invalid_partition", "give the partition's id: ?partition=p0123456789abcdef")
    steps = _rows(store, outputs["forecasts"], partition_id)
    history = _rows(store, outputs["history"], partition_id) if "history" in outputs else []
    if not steps and not history:
        raise ApiError(404, "partition_not_found", f"job {job['id']} has no forecast for partition {partition_id!r}")
    first = steps[0] if steps else history[0]
    bounds = sorted((name for name in first if name.startswith(("lo_", "hi_"))),
                    key=lambda name: (float(name[3:]), name))
    levels = sorted({float(name[3:]) for name in bounds})
    return {
        "partition_id": partition_id,
        "keys": {k: v for k, v in first.items() if k not in _NOT_KEYS and k not in bounds},
        "levels": levels,
        "history": [{"timestamp": _value(row["ds"]), "value": _value(row["y"])} for row in history],
        "forecast": [{"timestamp": _value(row["ds"]), "mean": _value(row["forecast"]),
                      **{name: _value(row[name]) for name in bounds}} for row in steps],
        "model": {key: _value(first.get(key)) for key in
                  ("model_type", "model_version", "model_run_id", "flagged", "short_history", "observations",
                   "short_history_reason")} if steps else None,
    }


_NOT_KEYS = {"partition_id", "ds", "y", "forecast", "model_type", "model_version", "model_run_id", "flagged",
             "short_history", "observations", "short_history_reason", "run_id"}
