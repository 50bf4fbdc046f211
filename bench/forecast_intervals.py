"""What intervals add to a warm real-time forecast, side by side in one process.

    python bench/forecast_intervals.py [--series 40] [--requests 1500] [--model-set fast] [--quick] [--output F]

Trains, registers and publishes `--series` M3 monthly series (the run's horizon 18), then answers
warm requests (horizon 12, models already in the cache, partitions drawn at random) two ways,
alternating request by request: as POST /api/forecast answers now (production-map lookup, mean and
the 80/95% bounds per step, JSON-able answer) and as it answered before intervals (map lookup, the
mean, timestamps). The end-to-end figure (devhost + HTTP) is bench/forecast_load.py's; this
measures the difference intervals make to it. Writes bench/results/forecast_intervals.json (`--quick`:
8 series, 100 requests, beside it as forecast_intervals.quick.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from forecast_support import as_csv, m3_table  # noqa: E402

from bench.report import BenchReport, quick_path  # noqa: E402
from forecast_job import train  # noqa: E402
from forecast_job.manifest import prepare_work  # noqa: E402
from forecast_job.options import TableOptions, TrainOptions  # noqa: E402
from forecast_job.production_map import FolderMaps, ProductionMaps  # noqa: E402
from forecast_job.publish import publish  # noqa: E402
from forecast_job.registry import FolderArtifacts, IndexRegistry  # noqa: E402
from forecast_job.serving import Forecaster, ModelCache, future_timestamps  # noqa: E402
from forecast_job.table import read_table  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "forecast_intervals.json"
HORIZON = 12


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=40)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--model-set", default="fast")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 8 series, 100 requests")
    parser.add_argument("--output", type=Path, help="where to write the JSON")
    args = parser.parse_args()
    if args.quick:
        args.series, args.requests = 8, 100
    report = BenchReport(quick_path(RESULTS, args.quick, args.output), "forecast_intervals", series=args.series,
                         model_set=args.model_set, requests=args.requests, horizon=HORIZON)
    options = TrainOptions(horizon=18, model_set=args.model_set)
    with tempfile.TemporaryDirectory(prefix="forecast-intervals-") as scratch:
        root = Path(scratch)
        table = read_table(as_csv(m3_table(args.series)), TableOptions(target_column="sales"), options)
        manifest = prepare_work(table, root / "work", run_id="run1", dataset="m3", train=options)
        train.run_local(root / "work", root / "out", workers=2)
        registry, artifacts = IndexRegistry(root / "registry.sqlite"), FolderArtifacts(root / "artifacts")
        publish(root / "work", root / "out", registry, artifacts, root / "results")
        forecaster = Forecaster(ProductionMaps(FolderMaps(artifacts.root), refresh_seconds=0), artifacts,
                                ModelCache(10**9))
        keys = [entry.keys for entry in manifest.partitions]
        for partition in keys:  # every model loaded, every request warm
            forecaster.forecast("m3", partition, HORIZON)

        def before(partition: dict) -> dict:  # the answer's work before intervals existed
            version = forecaster.production("m3", partition)
            values = [float(v) for v in forecaster._load(version).predict(h=HORIZON)["mean"]]
            stamps = future_timestamps(version.last_timestamp, version.freq, HORIZON)
            return {"forecast": [{"timestamp": t, "mean": v} for t, v in zip(stamps, values, strict=True)]}

        timings: dict[str, list[float]] = {"with_intervals": [], "before_intervals": []}
        rng = np.random.default_rng(0)
        for i in range(args.requests):
            partition = keys[rng.integers(len(keys))]
            for name in (("with_intervals", "before_intervals") if i % 2 else ("before_intervals", "with_intervals")):
                started = time.perf_counter()
                if name == "with_intervals":
                    forecaster.forecast("m3", partition, HORIZON).as_dict()
                else:
                    before(partition)
                timings[name].append((time.perf_counter() - started) * 1000)
    report.update({f"{name}_ms": {"p50": percentile(v, 50), "p95": percentile(v, 95)} for name, v in timings.items()})
    report["added_p95_ms"] = round(report["with_intervals_ms"]["p95"] - report["before_intervals_ms"]["p95"], 3)
    report.write()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
