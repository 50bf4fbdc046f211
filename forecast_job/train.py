"""Training entry: one model per partition, as an Azure ML parallel job or a local process pool.

    python -m forecast_job.train --work DIR --output DIR [--workers N] [--retries R]

Azure ML (parallel job, `partition_keys=["partition"]` over the MLTable in DIR/partitions):
`init()` reads `--work` / `--output` from the program arguments, `run(mini_batch, context)` gets
one partition's rows as a DataFrame and its id in `context.partition_key_value["partition"]`.
Locally the same `train_partition` runs in a ProcessPoolExecutor over mini-batches of ids.

Output, per partition (written by exactly one worker; atomic; result.json last):

    <output>/<partition id>/model.pkl      the chosen model, fitted on all the data (pickle)
    <output>/<partition id>/baseline.pkl   seasonal naive on all the data (the fallback; none for a short history)
    <output>/<partition id>/result.json    status, keys, model type, metrics, interval scores, short_history

Resumable: a partition whose result.json says "trained" is skipped, so a resubmitted run trains
only the rest. A partition whose training raised gets a "failed" result.json (with the error) and
is tried again by the next run.
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
from pathlib import Path

import numpy as np

from .files import write_bytes_atomic, write_text_atomic
from .manifest import Manifest, ManifestError, PartitionEntry, partition_file

log = logging.getLogger("forecast_job")

RESULT = "result.json"
MODEL = "model.pkl"
BASELINE = "baseline.pkl"
RESULT_SCHEMA = 1


def result_path(output: Path, pid: str) -> Path:
    return Path(output) / pid / RESULT


def is_trained(output: Path, pid: str) -> bool:
    try:
        return json.loads(result_path(output, pid).read_text(encoding="utf-8")).get("status") == "trained"
    except (OSError, json.JSONDecodeError):
        return False


def read_results(output: Path) -> list[dict]:
    """Every partition's result record under `output` (trained and failed)."""
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(Path(output).glob(f"*/{RESULT}"))]


def _record(manifest: Manifest, entry: PartitionEntry, status: str, **fields) -> dict:
    return {"schema_version": RESULT_SCHEMA, "status": status, "run_id": manifest.run_id,
            "dataset": manifest.dataset, "partition_id": entry.id, "keys": entry.keys,
            "observations": entry.observations, "last_timestamp": entry.last_timestamp, "freq": manifest.freq,
            "season_length": manifest.season_length, "horizon": manifest.horizon, **fields}


def train_partition(manifest: Manifest, entry: PartitionEntry, y: np.ndarray, output: Path) -> dict:
    """Train, write the artifacts, then the result record (last). Returns the record."""
    from .fit import train_series  # statsforecast is imported by workers only

    started = time.perf_counter()
    folder = Path(output) / entry.id
    y = np.asarray(y, dtype="float64")
    if entry.short_history:
        return _train_short(manifest, entry, y, folder, started)
    options = manifest.train
    trained = train_series(y, horizon=manifest.horizon,
                           season_length=manifest.season_length, model_set=options.model_set,
                           windows=options.windows, selection_metric=options.selection_metric,
                           selection_margin=options.selection_margin)
    write_bytes_atomic(folder / MODEL, pickle.dumps(trained.model, protocol=pickle.HIGHEST_PROTOCOL))
    write_bytes_atomic(folder / BASELINE, pickle.dumps(trained.baseline, protocol=pickle.HIGHEST_PROTOCOL))
    record = _record(manifest, entry, "trained", model_type=trained.model_type, metrics=trained.metrics,
                     baseline_metrics=trained.baseline_metrics, candidates=trained.candidates,
                     candidate_errors=trained.errors, artifacts={"model": MODEL, "baseline": BASELINE},
                     interval_scores=trained.interval_scores,
                     seconds=round(time.perf_counter() - started, 4), versions=_versions())
    write_text_atomic(folder / RESULT, json.dumps(record, allow_nan=True))
    return record


def _train_short(manifest: Manifest, entry: PartitionEntry, y: np.ndarray, folder: Path, started: float) -> dict:
    """A short history: the short-history rule's model on all of it; no holdout, so no metrics,
    no baseline and no interval scores (its intervals use the run's calibration)."""
    from .short_history import fit_short

    fitted = fit_short(y, manifest.season_length)
    write_bytes_atomic(folder / MODEL, pickle.dumps(fitted.model, protocol=pickle.HIGHEST_PROTOCOL))
    record = _record(manifest, entry, "trained", model_type=fitted.model_type, metrics={}, baseline_metrics={},
                     candidates={}, candidate_errors=fitted.errors, artifacts={"model": MODEL},
                     short_history={"observations": entry.observations, "reason": entry.short_history},
                     interval_scores={}, seconds=round(time.perf_counter() - started, 4), versions=_versions())
    write_text_atomic(folder / RESULT, json.dumps(record, allow_nan=True))
    return record


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"statsforecast": version("statsforecast"), "python": sys.version.split()[0]}


def train_with_retries(manifest: Manifest, entry: PartitionEntry, y: np.ndarray, output: Path, retries: int) -> bool:
    """True when trained; after `retries` extra attempts, a failed record is written and False returned."""
    error: Exception | None = None
    for attempt in range(1, retries + 2):
        try:
            train_partition(manifest, entry, y, output)
            return True
        except Exception as caught:  # noqa: BLE001 - every failure is retried, then recorded
            error = caught
            log.warning("partition %s attempt %d failed: %s", entry.id, attempt, caught)
    write_text_atomic(result_path(output, entry.id),
                      json.dumps(_record(manifest, entry, "failed", error=f"{type(error).__name__}: {error}")))
    return False


def _read_series(work: Path, pid: str) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(partition_file(work, pid), columns=["y"]).column("y").to_numpy()


_WORKER: dict = {}


def _init_worker(work: str, output: str, retries: int) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    _WORKER.update(work=Path(work), output=Path(output), retries=retries, manifest=Manifest.load(Path(work)))


def _train_batch(ids: Sequence[str]) -> list[str]:
    """A mini-batch in a pool worker; returns the ids that failed."""
    manifest, work, output = _WORKER["manifest"], _WORKER["work"], _WORKER["output"]
    return [pid for pid in ids
            if not train_with_retries(manifest, manifest.entry(pid), _read_series(work, pid), output,
                                      _WORKER["retries"])]


def mini_batches(ids: Sequence[str], workers: int, size: int | None = None) -> list[list[str]]:
    """About eight batches per worker (so a slow batch does not leave the others idle), 1-64 each."""
    size = size or max(1, min(64, len(ids) // (workers * 8) or 1))
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


def run_local(work: Path, output: Path, *, workers: int | None = None, retries: int = 1,
              only: Iterable[str] | None = None) -> list[str]:
    """Train every partition of the manifest that has no "trained" result yet, in a process pool.
    Returns the ids that failed."""
    manifest = Manifest.load(work)
    wanted = set(only) if only is not None else None
    todo = [e.id for e in manifest.partitions
            if (wanted is None or e.id in wanted) and not is_trained(output, e.id)]
    log.info("run %s: %d partitions, %d already trained, %d to train", manifest.run_id, len(manifest.partitions),
             len(manifest.partitions) - len(todo), len(todo))
    if not todo:
        return []
    workers = workers or os.cpu_count() or 1
    failed: list[str] = []
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker,
                             initargs=(str(work), str(output), retries)) as pool:
        for batch_failed in pool.map(_train_batch, mini_batches(todo, workers)):
            failed.extend(batch_failed)
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
    """One partition per mini-batch (partition_keys). Returns its id; raises if it failed, so Azure ML
    retries the mini-batch (retry_settings) and counts it against mini_batch_error_threshold."""
    pid = str(mini_batch_context.partition_key_value["partition"])
    manifest, output = _WORKER["manifest"], _WORKER["output"]
    if is_trained(output, pid):
        return [pid]
    frame = mini_batch.sort_values("ds")
    if not train_with_retries(manifest, manifest.entry(pid), frame["y"].to_numpy(), output, _WORKER["retries"]):
        raise RuntimeError(f"partition {pid} failed; see {result_path(output, pid)}")
    return [pid]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder with manifest.json and partitions/")
    parser.add_argument("--output", type=Path, required=True, help="folder for one result folder per partition")
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
