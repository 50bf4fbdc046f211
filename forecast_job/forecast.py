"""Batch forecast: `horizon` periods for every partition from its production model, as Parquet.

    <results>/forecasts/run_id=<run>/part-0.parquet   key columns, partition_id, ds, forecast,
                                                       model_type, model_version, model_run_id, flagged
    <results>/metrics/run_id=<run>/part-0.parquet     one row per partition of the run: status, keys,
                                                       metrics, baseline metrics, gate decision

Hive-style `run_id=` folders, so Synapse serverless, Power BI and DuckDB read every run as one
table with a run_id column. A model forecasts from the end of the data it was fitted on (a kept
champion from an earlier run starts earlier; `model_run_id` says which run fitted it).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from .manifest import Manifest
from .naming import model_name
from .registry import PRODUCTION, ArtifactStore, Registry

PART = "part-0.parquet"


def run_folder(results: Path, table: str, run_id: str) -> Path:
    return Path(results) / table / f"run_id={run_id}"


def _write(frame: pd.DataFrame, results: Path, table: str, run_id: str) -> Path:
    folder = run_folder(results, table, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{PART}.partial"
    frame.to_parquet(partial, index=False)
    partial.replace(folder / PART)
    return folder / PART


def batch_forecast(manifest: Manifest, registry: Registry, artifacts: ArtifactStore, results: Path,
                   horizon: int | None = None) -> tuple[Path, list[str]]:
    """Forecast every partition of the manifest that has a production model; returns the Parquet
    path and the ids with no production model (rejected or failed, and never trained before)."""
    horizon = horizon or manifest.horizon
    columns: dict[str, list] = {c: [] for c in (*manifest.partition_columns, "partition_id", "ds", "forecast",
                                                "model_type", "model_version", "model_run_id", "flagged")}
    unserved = []
    for entry in manifest.partitions:
        production = registry.by_alias(model_name(manifest.dataset, entry.id), PRODUCTION)
        if production is None:
            unserved.append(entry.id)
            continue
        model = pickle.loads(artifacts.get(production.artifact))
        values = np.asarray(model.predict(h=horizon)["mean"], dtype="float64")
        freq = production.freq or manifest.freq
        start = pd.Timestamp(production.last_timestamp or entry.last_timestamp)
        ds = pd.date_range(start, periods=horizon + 1, freq=freq)[1:]
        for column in manifest.partition_columns:
            columns[column].extend([entry.keys[column]] * horizon)
        columns["partition_id"].extend([entry.id] * horizon)
        columns["ds"].extend(ds)
        columns["forecast"].extend(values.tolist())
        columns["model_type"].extend([production.model_type] * horizon)
        columns["model_version"].extend([production.version] * horizon)
        columns["model_run_id"].extend([production.run_id] * horizon)
        columns["flagged"].extend([production.flagged] * horizon)
    frame = pd.DataFrame(columns).astype({"ds": "datetime64[ns]", "model_version": "int64", "flagged": "bool"})
    return _write(frame, results, "forecasts", manifest.run_id), unserved


def metrics_table(manifest: Manifest, records: list[dict], decisions: dict[str, dict], rejected: list[dict],
                  results: Path) -> Path:
    """One row per partition the run saw: trained (with metrics and the gate's decision), failed, rejected."""
    rows = []
    for record in records:
        row = {**record["keys"], "partition_id": record["partition_id"], "status": record["status"],
               "model_type": record.get("model_type"), "error": record.get("error")}
        row.update({k: _finite(v) for k, v in (record.get("metrics") or {}).items()})
        row.update({f"baseline_{k}": _finite(v) for k, v in (record.get("baseline_metrics") or {}).items()})
        decision = decisions.get(record["partition_id"], {})
        row.update({"gate_action": decision.get("action"), "gate_passed": decision.get("passed"),
                    "production_version": decision.get("production_version"),
                    "production_flagged": decision.get("flagged")})
        rows.append(row)
    for rejection in rejected:
        rows.append({**rejection["keys"], "partition_id": rejection["partition_id"], "status": "rejected",
                     "error": "; ".join(p["message"] for p in rejection["problems"])})
    frame = pd.DataFrame(rows)
    for column in manifest.partition_columns:
        if column in frame:
            frame[column] = frame[column].astype("string")
    return _write(frame, results, "metrics", manifest.run_id)


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
