"""Training entry: one model per partition, a bucket of partitions at a time, as an Azure ML
parallel job or a local process pool.

    python -m forecast_job.train --work DIR --output DIR [--workers N] [--retries R]

Azure ML (parallel job, `partition_keys=["bucket"]` over the MLTable in DIR/partitions): `init()`
reads `--work` / `--output` from the program arguments, `run(mini_batch, context)` gets one bucket's
rows (partition, ds, y) as a DataFrame and its number in `context.partition_key_value["bucket"]`.
Locally the same `train_bucket` runs in a ProcessPoolExecutor over the buckets.

Output, per bucket (written by exactly one worker; atomic; the partitions file last):

    <output>/bucket=NNNN/models.bin              every partition's model (and baseline) pickle, back to back
    <output>/bucket=NNNN/partitions-<count>.json  the partitions' records: status, keys, model type, metrics,
                                                   interval scores, short_history, and `artifacts`: each
                                                   pickle's [offset, length] in models.bin

A 10,000-partition run writes a few hundred files, not 30,000, and its progress is read from the
file names alone (`<count>`). Resumable: a bucket whose partitions file exists and holds no failed
partition is skipped, so a resubmitted run trains only the rest; a bucket with a failure is
trained again whole by the next run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import write_bytes_atomic, write_text_atomic
from .manifest import (
    BUCKET_KEY,
    BUNDLE,
    PARTITION_COLUMN,
    PARTITIONS_FILE,
    Manifest,
    ManifestError,
    PartitionEntry,
    partitions_file_name,
    read_bucket,
    split_bucket,
)

log = logging.getLogger("forecast_job")

RESULT_SCHEMA = 2


def bucket_folder(output: Path, bucket: int) -> Path:
    return Path(output) / f"{BUCKET_KEY}={bucket:04d}"


def partitions_file(folder: Path) -> Path | None:
    """A bucket folder's finished partitions file, if any."""
    found = sorted(path for path in folder.glob("partitions-*.json") if PARTITIONS_FILE.match(path.name))
    return found[-1] if found else None


def is_done(output: Path, bucket: int) -> bool:
    """Trained: a partitions file whose every partition trained (a failure is tried again)."""
    path = partitions_file(bucket_folder(output, bucket))
    if path is None:
        return False
    try:
        return all(r.get("status") == "trained" for r in json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return False


def read_results(output: Path) -> list[dict]:
    """Every partition's record under `output` (trained and failed), each with `bundle`: the file
    its `artifacts` ranges are in."""
    records = []
    for folder in sorted(Path(output).glob(f"{BUCKET_KEY}=*")):
        path = partitions_file(folder)
        if path is not None:
            records += [{**record, "bundle": str(folder / BUNDLE)}
                        for record in json.loads(path.read_text(encoding="utf-8"))]
    return records


def load_trained(record: dict, kind: str = "model") -> object | None:
    """A trained partition's fitted object of `kind` ("model", "baseline") from its bucket's bundle, or
    None where it has none (a short history has no baseline)."""
    span = record.get("artifacts", {}).get(kind)
    if span is None:
        return None
    offset, length = span
    with open(record["bundle"], "rb") as bundle:
        bundle.seek(offset)
        return pickle.loads(bundle.read(length))


def _record(manifest: Manifest, entry: PartitionEntry, status: str, **fields) -> dict:
    return {"schema_version": RESULT_SCHEMA, "status": status, "run_id": manifest.run_id,
            "dataset": manifest.dataset, "partition_id": entry.id, "keys": entry.keys,
            "observations": entry.observations, "last_timestamp": entry.last_timestamp, "freq": manifest.freq,
            "season_length": manifest.season_length, "horizon": manifest.horizon, **fields}


@dataclass
class Fitted:
    """A partition's fitted objects (pickled into the bucket's bundle) and its record."""

    objects: dict[str, object]  # "model" and, except for a short history, "baseline"
    record: dict


def fit_partition(manifest: Manifest, entry: PartitionEntry, y: np.ndarray) -> Fitted:
    """The chosen model and the seasonal-naive baseline, fitted on all the data, and the record."""
    from .fit import train_series  # statsforecast is imported by workers only

    started = time.perf_counter()
    y = np.asarray(y, dtype="float64")
    if entry.short_history:
        return _fit_short(manifest, entry, y, started)
    options = manifest.train
    if options.fit_window is not None:
        y = y[-options.fit_window:]
    trained = train_series(y, horizon=manifest.horizon,
                           season_length=manifest.season_length, model_set=options.model_set,
                           windows=options.windows, selection_metric=options.selection_metric,
                           selection_margin=options.selection_margin, gate=options.gate)
    record = _record(manifest, entry, "trained", model_type=trained.model_type, metrics=trained.metrics,
                     baseline_metrics=trained.baseline_metrics, candidates=trained.candidates,
                     candidate_errors=trained.errors, interval_scores=trained.interval_scores,
                     fitted_points=len(y), windows=trained.windows, preferred=trained.preferred,
                     seconds=round(time.perf_counter() - started, 4), versions=_versions())
    return Fitted({"model": trained.model, "baseline": trained.baseline}, record)


def _fit_short(manifest: Manifest, entry: PartitionEntry, y: np.ndarray, started: float) -> Fitted:
    """A short history: the short-history rule's model on all of it; no holdout, so no metrics,
    no baseline and no interval scores (its intervals use the run's calibration)."""
    from .short_history import fit_short

    fitted = fit_short(y, manifest.season_length)
    record = _record(manifest, entry, "trained", model_type=fitted.model_type, metrics={}, baseline_metrics={},
                     candidates={}, candidate_errors=fitted.errors,
                     short_history={"observations": entry.observations, "reason": entry.short_history},
                     interval_scores={}, seconds=round(time.perf_counter() - started, 4), versions=_versions())
    return Fitted({"model": fitted.model}, record)


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"statsforecast": version("statsforecast"), "python": sys.version.split()[0]}


def fit_with_retries(manifest: Manifest, entry: PartitionEntry, y: np.ndarray, retries: int) -> Fitted | dict:
    """The fitted partition, or after `retries` extra attempts its failed record."""
    error: Exception | None = None
    for attempt in range(1, retries + 2):
        try:
            return fit_partition(manifest, entry, y)
        except Exception as caught:  # noqa: BLE001 - every failure is retried, then recorded
            error = caught
            log.warning("partition %s attempt %d failed: %s", entry.id, attempt, caught)
    return _record(manifest, entry, "failed", error=f"{type(error).__name__}: {error}")


def train_bucket(manifest: Manifest, bucket: int, series: dict[str, tuple], output: Path, retries: int) -> list[dict]:
    """Train every partition of one bucket; write its bundle, then its partitions file (last).
    Returns the records; `series` maps partition id -> (ds, y)."""
    folder = bucket_folder(output, bucket)
    bundle, records = bytearray(), []
    for entry in sorted(manifest.in_bucket(bucket), key=lambda e: e.id):
        fitted = fit_with_retries(manifest, entry, series[entry.id][1], retries)
        if isinstance(fitted, dict):
            records.append(fitted)
            continue
        ranges = {}
        for kind, obj in fitted.objects.items():
            data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
            ranges[kind] = [len(bundle), len(data)]
            bundle += data
        records.append({**fitted.record, "artifacts": ranges})
    write_bytes_atomic(folder / BUNDLE, bytes(bundle))
    stale = partitions_file(folder)
    write_text_atomic(folder / partitions_file_name(len(records)), json.dumps(records, allow_nan=True))
    if stale is not None and stale.name != partitions_file_name(len(records)):
        stale.unlink(missing_ok=True)
    return records


_WORKER: dict = {}


def _init_worker(work: str, output: str, retries: int) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    _WORKER.update(work=Path(work), output=Path(output), retries=retries, manifest=Manifest.load(Path(work)))


def _train_one_bucket(bucket: int) -> list[str]:
    """A bucket in a pool worker, read from its file; returns the ids that failed."""
    manifest, work, output = _WORKER["manifest"], _WORKER["work"], _WORKER["output"]
    records = train_bucket(manifest, bucket, read_bucket(work, bucket), output, _WORKER["retries"])
    return [r["partition_id"] for r in records if r["status"] != "trained"]


def run_local(work: Path, output: Path, *, workers: int | None = None, retries: int = 1,
              only: Iterable[int] | None = None) -> list[str]:
    """Train every bucket of the manifest not trained yet (or just the buckets in `only`), in a
    process pool, largest first (so the last to start is a short one). Returns the ids that failed."""
    manifest = Manifest.load(work)
    wanted = set(only) if only is not None else None
    sizes = {bucket: sum(e.observations for e in manifest.in_bucket(bucket)) for bucket in range(manifest.buckets)}
    todo = sorted((b for b, size in sizes.items() if size and (wanted is None or b in wanted)
                   and not is_done(output, b)), key=lambda b: -sizes[b])
    log.info("run %s: %d partitions in %d buckets, %d buckets to train", manifest.run_id, len(manifest.partitions),
             sum(1 for size in sizes.values() if size), len(todo))
    if not todo:
        return []
    workers = workers or os.cpu_count() or 1
    failed: list[str] = []
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                             initargs=(str(work), str(output), retries)) as pool:
        for bucket_failed in pool.map(_train_one_bucket, todo):
            failed.extend(bucket_failed)
    return failed


# --- Azure ML parallel job (run_function task): init() once per worker process, run() per mini-batch.

def init() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--retries", type=int, default=0)
    args, _ = parser.parse_known_args()
    _init_worker(str(args.work), str(args.output), args.retries)


def run(mini_batch, mini_batch_context) -> list[str]:
    """One bucket per mini-batch (partition_keys). Returns its partition ids; raises if one failed,
    so Azure ML retries the mini-batch (retry_settings) and counts it against mini_batch_error_threshold."""
    bucket = int(mini_batch_context.partition_key_value[BUCKET_KEY])
    manifest, output = _WORKER["manifest"], _WORKER["output"]
    ids = [entry.id for entry in manifest.in_bucket(bucket)]
    if is_done(output, bucket):
        return ids
    frame = mini_batch.sort_values([PARTITION_COLUMN, "ds"], kind="stable")
    series = split_bucket(frame[PARTITION_COLUMN].to_numpy(), frame["ds"].to_numpy(), frame["y"].to_numpy())
    records = train_bucket(manifest, bucket, series, output, _WORKER["retries"])
    failed = [r["partition_id"] for r in records if r["status"] != "trained"]
    if failed:
        raise RuntimeError(f"bucket {bucket}: partitions {failed[:5]} failed; see {bucket_folder(output, bucket)}")
    return ids


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder with manifest.json and partitions/")
    parser.add_argument("--output", type=Path, required=True, help="folder for one result folder per bucket")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: one per CPU)")
    parser.add_argument("--retries", type=int, default=1, help="extra attempts per failing partition")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        failed = run_local(args.work, args.output, workers=args.workers, retries=args.retries)
    except ManifestError as error:
        log.error("cannot start: %s", error)
        return 2
    if failed:
        log.error("%d partitions failed: %s", len(failed), ", ".join(failed[:20]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
