"""Batch forecast: `horizon` periods for every partition from its production model, as Parquet.

    <results>/forecasts/run_id=<run>/part-0.parquet   key columns, partition_id, ds, forecast,
                                                       lo_<level>, hi_<level> per level (intervals.py),
                                                       model_type, model_version, model_run_id, flagged,
                                                       short_history, observations, short_history_reason
    <results>/metrics/run_id=<run>/part-0.parquet     one row per partition of the run: status, keys,
                                                       metrics, baseline metrics, gate decision, short history
    <results>/history/run_id=<run>/part-0.parquet     key columns, partition_id, ds, y: the last
                                                       HISTORY_POINTS of the data each partition was
                                                       trained on (what the page draws)

Hive-style `run_id=` folders, so Synapse serverless, Power BI and DuckDB read every run as one
table with a run_id column. A model forecasts from the end of the data it was fitted on (a kept
champion from an earlier run starts earlier; `model_run_id` says which run fitted it).
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import pandas as pd

from .intervals import as_calibrated
from .levels import bound_columns, level_name
from .manifest import Manifest, read_bucket
from .naming import model_name
from .registry import PRODUCTION, ArtifactStore, Registry

PART = "part-0.parquet"
HISTORY_POINTS = 1000  # per partition: enough to draw a season or three of a daily series, not a copy of the upload


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
    """Forecast every partition of the manifest that has a production model, with its prediction
    intervals at the run's levels; returns the Parquet path and the ids with no production model
    (rejected or failed, and never trained before)."""
    horizon = horizon or manifest.horizon
    levels = manifest.train.levels
    bounds = bound_columns(levels)
    columns: dict[str, list] = {c: [] for c in (*manifest.partition_columns, "partition_id", "ds", "forecast", *bounds,
                                                "model_type", "model_version", "model_run_id", "flagged",
                                                "short_history", "observations", "short_history_reason")}
    unserved = []
    for entry in manifest.partitions:
        production = registry.by_alias(model_name(manifest.dataset, entry.id), PRODUCTION)
        if production is None:
            unserved.append(entry.id)
            continue
        predicted = as_calibrated(pickle.loads(artifacts.get(production.artifact))).intervals(horizon, levels)
        freq = production.freq or manifest.freq
        start = pd.Timestamp(production.last_timestamp or entry.last_timestamp)
        ds = pd.date_range(start, periods=horizon + 1, freq=freq)[1:]
        for column in manifest.partition_columns:
            columns[column].extend([entry.keys[column]] * horizon)
        columns["partition_id"].extend([entry.id] * horizon)
        columns["ds"].extend(ds)
        columns["forecast"].extend(predicted.mean.tolist())
        for level in levels:
            lo, hi = predicted.bounds[level]
            columns[f"lo_{level_name(level)}"].extend(lo.tolist())
            columns[f"hi_{level_name(level)}"].extend(hi.tolist())
        for column, value in (("model_type", production.model_type), ("model_version", production.version),
                              ("model_run_id", production.run_id), ("flagged", production.flagged),
                              ("short_history", bool(production.short_history)),
                              ("observations", production.observations),
                              ("short_history_reason", production.short_history or None)):
            columns[column].extend([value] * horizon)
    frame = pd.DataFrame(columns).astype({"ds": "datetime64[ns]", "model_version": "int64", "flagged": "bool",
                                          "short_history": "bool", "observations": "int64",
                                          "short_history_reason": "string", **{b: "float64" for b in bounds}})
    return _write(frame, results, "forecasts", manifest.run_id), unserved


def history_table(manifest: Manifest, work: Path, results: Path) -> Path:
    """The last HISTORY_POINTS observations each partition of the run was trained on (key columns,
    partition_id, ds, y), beside the forecasts: what the jobs page draws a partition's history from.
    Written a bucket at a time, so memory holds one bucket."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [*manifest.partition_columns, "partition_id", "ds", "y"]
    schema = pa.schema([*((name, pa.string()) for name in manifest.partition_columns), ("partition_id", pa.string()),
                        ("ds", pa.timestamp("ns")), ("y", pa.float64())])
    folder = run_folder(results, "history", manifest.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{PART}.partial"
    with pq.ParquetWriter(partial, schema) as writer:
        for bucket in sorted({entry.bucket for entry in manifest.partitions}):
            series = read_bucket(work, bucket)
            frames = [pd.DataFrame({"ds": ds[-HISTORY_POINTS:], "y": y[-HISTORY_POINTS:]}).assign(
                partition_id=entry.id, **entry.keys) for entry in manifest.in_bucket(bucket)
                for ds, y in (series[entry.id],)]
            if frames:
                frame = pd.concat(frames, ignore_index=True)[columns].astype({"ds": "datetime64[ns]", "y": "float64"})
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
    partial.replace(folder / PART)
    return folder / PART


def metrics_table(manifest: Manifest, records: list[dict], decisions: dict[str, dict], rejected: list[dict],
                  results: Path) -> Path:
    """One row per partition the run saw: trained (with metrics and the gate's decision), failed, rejected.
    `preferred_model`: the selection's choice where it failed the gate and `model_type` passed instead."""
    rows = []
    for record in records:
        short = record.get("short_history") or {}
        row = {**record["keys"], "partition_id": record["partition_id"], "status": record["status"],
               "model_type": record.get("model_type"), "preferred_model": record.get("preferred") or None,
               "error": record.get("error"),
               "observations": record.get("observations"), "short_history": bool(short),
               "short_history_reason": short.get("reason")}
        row.update({k: _finite(v) for k, v in (record.get("metrics") or {}).items()})
        row.update({f"baseline_{k}": _finite(v) for k, v in (record.get("baseline_metrics") or {}).items()})
        decision = decisions.get(record["partition_id"], {})
        row.update({"gate_action": decision.get("action"), "gate_passed": decision.get("passed"),
                    "production_version": decision.get("production_version"),
                    "production_flagged": decision.get("flagged")})
        rows.append(row)
    for rejection in rejected:
        rows.append({**rejection["keys"], "partition_id": rejection["partition_id"], "status": "rejected",
                     "error": "; ".join(p["message"] for p in rejection["problems"]), "short_history": False})
    frame = pd.DataFrame(rows).astype({"short_history": "bool"})
    for column in manifest.partition_columns:
        if column in frame:
            frame[column] = frame[column].astype("string")
    return _write(frame, results, "metrics", manifest.run_id)


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
