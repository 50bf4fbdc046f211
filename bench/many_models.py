"""Many-models benchmark: M3 and Tourism monthly, end to end through the local process pool.

    python bench/many_models.py [--quick] [--workers 2] [--mlflow-sample 200]

For each dataset (M3 monthly: 1,428 series, h=18; Tourism monthly: 366 series, h=24) the
competition's training parts go in as one CSV and run the whole path: validate -> prepare ->
train (forecast_job.train.run_local: selection on a holdout carved from the training part, refit
on all of it) -> publish (register into the SQLite index, gate, batch forecast Parquet). The
served forecasts (from the Parquet, i.e. after the gate) and the selected models' own forecasts are
scored on the competition's held-out test periods, beside seasonal naive: `smape_<dataset>` is the
selected models' forecasts, `..._served_after_gate` what the forecast Parquet serves (a partition
that fails the gate serves its flagged seasonal naive). The `fast` model set is
run on M3 too. Registration cost is measured for the index and, on a sample, for MLflow's SQLite
registry. Timings carry the load average (os.getloadavg) taken beside them: the machine is shared.
Prediction intervals (80% and 95%, intervals.py) are scored on the same test periods: empirical
coverage per level and MSIS of the 95% interval (M4's scaled interval score) of what the forecast
Parquet serves, beside seasonal naive's own statsforecast intervals in the same run, and beside the
other two methods on the same production models (`own`: the models' own intervals; `conformal`:
the run's conformal quantile alone; served: `both`). A fourth case uploads M3 with every third
series cut to its last 13, 24 or 36 points (shorter than min_length 42): every partition must get a
forecast, the short ones flagged. Training cost of intervals: the default set trained on every M3
series with and without the holdout spreads, interleaved series by series in one pool (ratio).
`--quick` uses the first 12 series of each dataset and a 10-model MLflow sample (a smoke test; its
figures are not the record).
Writes bench/results/many_models.json (quick runs: many_models.quick.json).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import BenchReport, quick_path
from forecast_job.fit import train_series
from forecast_job.gate import GateRule
from forecast_job.intervals import as_calibrated
from forecast_job.manifest import prepare_work
from forecast_job.metrics import mase, naive_scale, smape
from forecast_job.mlflow_registry import MlflowRegistry
from forecast_job.naming import model_name
from forecast_job.options import TableOptions, TrainOptions
from forecast_job.publish import publish
from forecast_job.registry import FolderArtifacts, IndexRegistry, NewVersion
from forecast_job.table import read_table
from forecast_job.train import load_trained, read_results, run_local
from tools.competition_series import monthly

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (80.0, 95.0)
SHORT_LENGTHS = (13, 24, 36)


def machine() -> dict:
    """CPU count, model and the vector extensions that matter for timings (from /proc/cpuinfo)."""
    info = {"cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {**info, "cpu": model, "flags": sorted(f for f in flags if f.startswith(("avx512", "amx")) or f == "avx2")}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rss_mb() -> dict[str, float]:
    """Peak resident memory (ru_maxrss is in KiB on Linux): this process, and the largest worker."""
    return {"main_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "largest_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def score(forecasts: dict[str, np.ndarray], data, season_length: int = 12) -> dict[str, float]:
    names = sorted(forecasts)
    training = data.table.groupby("series").target.apply(np.asarray)
    return {"smape": round(float(np.mean([smape(data.test[n], forecasts[n]) for n in names])), 3),
            "mase": round(float(np.mean([mase(data.test[n], forecasts[n], training[n], season_length)
                                         for n in names])), 3)}


def msis(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, scale: float, alpha: float = 0.05) -> float:
    """M4's mean scaled interval score of one interval at level 1 - alpha (lower is better)."""
    score = (hi - lo) + 2 / alpha * (lo - y) * (y < lo) + 2 / alpha * (y - hi) * (y > hi)
    return float(np.mean(score) / scale)


def interval_score(bounds: dict[str, dict[float, tuple[np.ndarray, np.ndarray]]], data) -> dict[str, float]:
    """Coverage per level and MSIS of the 95% interval, averaged over the series (`bounds`: series
    name -> level -> (lo, hi) over the test period); series without an interval are counted apart."""
    training = data.table.groupby("series").target.apply(np.asarray)
    usable = {name: b for name, b in bounds.items() if all(np.all(np.isfinite(lo)) for lo, _ in b.values())}
    out = {f"coverage_{level:g}": round(float(np.mean([np.mean((data.test[n] >= b[level][0]) &
                                                               (data.test[n] <= b[level][1]))
                                                       for n, b in usable.items()])), 4) for level in LEVELS}
    out["msis_95"] = round(float(np.mean([msis(data.test[n], *b[95.0], naive_scale(training[n], 12))
                                          for n, b in usable.items()])), 3)
    out["without_interval"] = len(bounds) - len(usable)
    return out


def served_bounds(served: pd.DataFrame) -> dict[str, dict[float, tuple[np.ndarray, np.ndarray]]]:
    return {name: {level: (group[f"lo_{level:g}"].to_numpy(), group[f"hi_{level:g}"].to_numpy())
                   for level in LEVELS} for name, group in served.sort_values("ds").groupby("series")}


def model_bounds(models: dict[str, object], horizon: int) -> dict[str, dict[float, tuple[np.ndarray, np.ndarray]]]:
    return {name: model.intervals(horizon, LEVELS).bounds for name, model in models.items()}


def seasonal_naive_bounds(baselines: dict[str, object], horizon: int):
    """Seasonal naive's own statsforecast intervals (no calibration, no floor)."""
    out = {}
    for name, baseline in baselines.items():
        raw = baseline.model.predict(h=horizon, level=[int(level) for level in LEVELS])
        out[name] = {level: (np.asarray(raw[f"lo-{level:g}"]), np.asarray(raw[f"hi-{level:g}"])) for level in LEVELS}
    return out


def shorten(data, every: int = 3):
    """Every `every`-th series cut to its last 13, 24 or 36 training points (in turn): a table where
    a third of the partitions are shorter than min_length (42 for h = 18)."""
    names = list(dict.fromkeys(data.table.series))
    keep = {name: SHORT_LENGTHS[(i // every) % len(SHORT_LENGTHS)] for i, name in enumerate(names) if i % every == 0}
    from_end = data.table.groupby("series", sort=False).cumcount(ascending=False)  # 0 = the last point
    limit = data.table.series.map(keep)
    table = data.table[limit.isna() | (from_end < limit)]
    return type(data)(table.reset_index(drop=True), data.test, data.horizon), keep


def run_case(dataset: str, model_set: str, workers: int, limit: int | None, root: Path,
             short_every: int | None = None) -> dict:
    data = monthly(dataset, limit=limit)  # scored against its test periods and whole training parts
    uploaded, cut = shorten(data, short_every) if short_every else (data, {})
    folder = root / f"{dataset}-{model_set}{'-short' if short_every else ''}"
    upload = folder / "upload.csv"
    folder.mkdir(parents=True)
    uploaded.table.to_csv(upload, index=False)
    train_options = TrainOptions(horizon=data.horizon, model_set=model_set, levels=LEVELS)

    started = time.perf_counter()
    table = read_table(upload, TableOptions(partition_columns=("series",)), train_options)
    manifest = prepare_work(table, folder / "work", run_id=f"{dataset}-{model_set}", dataset=dataset,
                            train=train_options)
    prepared = time.perf_counter()
    load_before = load()
    failed = run_local(folder / "work", folder / "out", workers=workers)
    trained = time.perf_counter()
    load_train = load()
    registry = IndexRegistry(folder / "registry" / "index.sqlite")
    artifacts = FolderArtifacts(folder / "registry" / "artifacts")
    summary = publish(folder / "work", folder / "out", registry, artifacts, folder / "results")
    published = time.perf_counter()

    served = pd.read_parquet(summary.forecasts)
    served_by_series = {name: group.sort_values("ds").forecast.to_numpy() for name, group in served.groupby("series")}
    records = read_results(folder / "out")
    own, naive, baselines, production = {}, {}, {}, {}
    for record in records:
        name = record["keys"]["series"]
        own[name] = load_trained(record).predict(h=data.horizon)["mean"]
        if (baseline := load_trained(record, "baseline")) is not None:  # a short history has none
            baselines[name] = baseline
            naive[name] = baseline.predict(h=data.horizon)["mean"]
        version = registry.by_alias(model_name(dataset, record["partition_id"]))
        production[name] = as_calibrated(pickle.loads(artifacts.get(version.artifact)))
    served_intervals = served_bounds(served)
    intervals = {"served (both)": interval_score(served_intervals, data),
                 **{f"{method} (same production models)": interval_score(model_bounds(
                     {n: replace(m, method=method) for n, m in production.items()}, data.horizon), data)
                    for method in ("own", "conformal")},
                 "seasonal naive, own": interval_score(seasonal_naive_bounds(baselines, data.horizon), data)}
    crossing = int(sum(((served[f"lo_{lv:g}"] > served.forecast) | (served[f"hi_{lv:g}"] < served.forecast)).sum()
                       for lv in LEVELS))
    metrics = pd.read_parquet(summary.metrics)
    partitions = len(manifest.partitions)
    # What each gate rule would serve on a first run (no champions): the model where it passes, else
    # the flagged seasonal naive. Measured from the same models (those training chose under the
    # default rule, falling back to a candidate that passes it), so the rules compare side by side.
    by_series = metrics.set_index("series")
    if_served = {}
    for rule in (GateRule(), GateRule(metric="mase"), GateRule(metric="accuracy", threshold=0.8)):
        served_forecasts = {name: own[name] if name not in naive or rule.passes(by_series.loc[name].to_dict())
                            else naive[name] for name in own}  # a short history serves its own model
        if_served[rule.describe()] = score(served_forecasts, data)["smape"]
    cpu_seconds = sum(r["seconds"] for r in records)
    short = {}
    if cut:
        short_names = set(cut)
        short = {"partitions_short": len(short_names), "flagged_short": int(metrics.short_history.sum()),
                 "missing_forecasts": partitions - served.series.nunique(),
                 "served_short": score({n: f for n, f in served_by_series.items() if n in short_names}, data),
                 "served_long": score({n: f for n, f in served_by_series.items() if n not in short_names}, data),
                 "intervals_short": interval_score({n: b for n, b in served_intervals.items() if n in short_names},
                                                   data),
                 "intervals_long": interval_score({n: b for n, b in served_intervals.items()
                                                   if n not in short_names}, data),
                 "served_short_by_length": {length: score({n: served_by_series[n] for n, k in cut.items()
                                                           if k == length}, data)["smape"]
                                            for length in SHORT_LENGTHS}}
    return {
        "dataset": dataset + ("-a-third-short" if cut else ""), "model_set": model_set, "partitions": partitions,
        "rejected": len(table.rejections), "failed": len(failed), "horizon": data.horizon, **short,
        "served": score(served_by_series, data), "selected_models": score(own, data),
        "seasonal_naive": score(naive, data), "intervals": intervals,
        "bounds_crossing_the_forecast": crossing,
        "chosen_model_types": metrics.model_type.value_counts().to_dict(),
        "gate_pass_rate": {
            "served rule": summary.pass_rate,
            "mase < 1": round(float((metrics.mase < 1).mean()), 4),
            "relative_mae < 1": round(float((metrics.relative_mae < 1).mean()), 4),
            "accuracy > 0.8": round(float((metrics.accuracy > 0.8).mean()), 4),
        },
        "served_smape_by_gate_rule": if_served,
        "flagged_in_production": int(metrics.production_flagged.fillna(False).sum()),
        "seconds": {"validate_and_prepare": round(prepared - started, 2), "train": round(trained - prepared, 2),
                    "register": round(summary.register_seconds, 3), "gate": round(summary.gate_seconds, 3),
                    "forecast_and_metrics": round(summary.forecast_seconds, 2),
                    "end_to_end": round(published - started, 2)},
        "models_per_minute": round(partitions / (trained - prepared) * 60, 1),
        "models_per_minute_per_core_steady": round(partitions / cpu_seconds * 60, 1),
        "registry_seconds_per_model": round(summary.register_seconds / max(summary.registered, 1), 6),
        "workers": workers, "load_average_before_train": load_before, "load_average_after_train": load_train,
        "_versions": (registry, [r for r in records if r["status"] == "trained"]),
    }


def _timed_both_ways(task: tuple[int, np.ndarray, int]) -> tuple[float, float]:
    """One series trained with and without the holdout spreads, the order alternating by index
    (so a change of machine load falls on both alike); returns (seconds without, seconds with)."""
    index, y, horizon = task
    timings = {}
    for spread in ((False, True) if index % 2 == 0 else (True, False)):
        started = time.perf_counter()
        train_series(y, horizon=horizon, season_length=12, spread=spread)
        timings[spread] = time.perf_counter() - started
    return timings[False], timings[True]


def interval_training_cost(workers: int, limit: int | None) -> dict:
    """The default set on every M3 monthly series, with and without intervals, interleaved in one
    pool: models a minute each way (per `workers` processes, excluding pool start) and their ratio."""
    data = monthly("m3", limit=limit)
    series = data.table.groupby("series", sort=False).target.apply(np.asarray)
    tasks = [(i, y, data.horizon) for i, y in enumerate(series)]
    before = load()
    with ProcessPoolExecutor(workers) as pool:
        timings = list(pool.map(_timed_both_ways, tasks, chunksize=8))
    without, with_ = (sum(t[k] for t in timings) for k in (0, 1))
    rate = {name: round(len(tasks) / (seconds / workers) * 60, 1) for name, seconds in
            (("without", without), ("with", with_))}
    return {"series": len(tasks), "workers": workers, "models_per_minute_without_intervals": rate["without"],
            "models_per_minute_with_intervals": rate["with"], "ratio_with_over_without": round(without / with_, 4),
            "load_average": [before, load()]}


def registration_costs(records: list[dict], sample: int, root: Path) -> dict:
    """The same registrations (no artifact copies) into the index and into MLflow's SQLite registry."""
    def versions(run: str):
        return [NewVersion(r["dataset"], run, r["keys"], r["model_type"], r["metrics"], f"file:///m/{r['partition_id']}",
                           f"file:///b/{r['partition_id']}", last_timestamp=r["last_timestamp"], freq=r["freq"],
                           partition_id=r["partition_id"]) for r in records]

    index = IndexRegistry(root / "cost" / "index.sqlite")
    started = time.perf_counter()
    registered = index.register_many(versions("cost"))
    index.set_aliases([(v.name, v.version) for v in registered])
    index_seconds = (time.perf_counter() - started) / len(records)
    mlflow_registry = MlflowRegistry(f"sqlite:///{root / 'cost' / 'mlflow.db'}")
    subset = versions("cost")[:sample]
    load_before = load()
    started = time.perf_counter()
    registered = mlflow_registry.register_many(subset)
    mlflow_registry.set_aliases([(v.name, v.version) for v in registered])
    mlflow_seconds = (time.perf_counter() - started) / len(subset)
    lookup_started = time.perf_counter()
    for v in registered[:50]:
        mlflow_registry.by_alias(v.name)
    mlflow_lookup = (time.perf_counter() - lookup_started) / min(50, len(registered))
    lookup_started = time.perf_counter()
    for v in registered[:50]:
        index.by_alias(v.name)
    index_lookup = (time.perf_counter() - lookup_started) / min(50, len(registered))
    return {"index_seconds_per_model": round(index_seconds, 6), "index_models": len(records),
            "mlflow_sqlite_seconds_per_model": round(mlflow_seconds, 5), "mlflow_models": len(subset),
            "mlflow_over_index": round(mlflow_seconds / index_seconds, 1),
            "alias_lookup_seconds": {"index": round(index_lookup, 6), "mlflow_sqlite": round(mlflow_lookup, 5)},
            "projected_seconds_for_10000_models": {"index": round(index_seconds * 1e4, 1),
                                                   "mlflow_sqlite": round(mlflow_seconds * 1e4, 1)},
            "load_average": [load_before, load()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke: 12 series of each dataset, 10 through MLflow")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mlflow-sample", type=int, default=200, help="models registered through MLflow")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/many_models.json)")
    args = parser.parse_args()
    limit, sample = (12, 10) if args.quick else (None, args.mlflow_sample)
    cases = [("m3", "default", None), ("m3", "fast", None), ("tourism", "default", None), ("m3", "default", 3)]
    results = BenchReport(quick_path(RESULTS / "many_models.json", args.quick, args.output), "many_models",
                          machine=machine(), quick=args.quick, cases=[])
    with tempfile.TemporaryDirectory(prefix="many-models-") as scratch:
        root = Path(scratch)
        for dataset, model_set, short_every in cases:
            with results.part(f"{dataset}:{model_set}" + (f":short every {short_every}" if short_every else "")):
                case = run_case(dataset, model_set, args.workers, limit, root, short_every)
                registry, records = case.pop("_versions")
                registry.close()
                results["cases"].append(case)
                print(json.dumps(case), flush=True)
                if (dataset, model_set, short_every) == ("m3", "default", None):
                    results["registry_cost"] = registration_costs(records, sample, root)
                    print(json.dumps(results["registry_cost"]), flush=True)
    with results.part("interval_training_cost"):
        results["interval_training_cost"] = interval_training_cost(args.workers, limit)
        print(json.dumps(results["interval_training_cost"]), flush=True)
    by_case = {(c["dataset"], c["model_set"]): c for c in results["cases"]}
    m3, fast, tourism = by_case["m3", "default"], by_case["m3", "fast"], by_case["tourism", "default"]
    short = by_case["m3-a-third-short", "default"]
    served, naive_own = m3["intervals"]["served (both)"], m3["intervals"]["seasonal naive, own"]
    tourism_served = tourism["intervals"]["served (both)"]
    results["summary"] = {
        "smape_m3_monthly": m3["selected_models"]["smape"],
        "smape_m3_monthly_served_after_gate": m3["served"]["smape"],
        "smape_m3_monthly_seasonal_naive": m3["seasonal_naive"]["smape"],
        "smape_m3_monthly_fast_set": fast["selected_models"]["smape"],
        "smape_tourism_monthly": tourism["selected_models"]["smape"],
        "smape_tourism_monthly_served_after_gate": tourism["served"]["smape"],
        "smape_tourism_monthly_seasonal_naive": tourism["seasonal_naive"]["smape"],
        "models_per_minute": m3["models_per_minute"],
        "models_per_minute_fast_set": fast["models_per_minute"],
        "registry_seconds_per_model": m3["registry_seconds_per_model"],
        "mlflow_seconds_per_model": results["registry_cost"]["mlflow_sqlite_seconds_per_model"],
        "gate_rule": GateRule().describe(),
        "gate_pass_rate": m3["gate_pass_rate"]["served rule"],
        "gate_pass_rate_tourism": tourism["gate_pass_rate"]["served rule"],
        "coverage_80": served["coverage_80"], "coverage_95": served["coverage_95"], "msis_95": served["msis_95"],
        "msis_95_seasonal_naive": naive_own["msis_95"],
        "msis_95_over_seasonal_naive": round(served["msis_95"] / naive_own["msis_95"], 3),
        "coverage_80_tourism": tourism_served["coverage_80"], "coverage_95_tourism": tourism_served["coverage_95"],
        "msis_95_tourism": tourism_served["msis_95"],
        "msis_95_seasonal_naive_tourism": tourism["intervals"]["seasonal naive, own"]["msis_95"],
        "a_third_short_missing_forecasts": short["missing_forecasts"],
        "a_third_short_flagged": [short["flagged_short"], short["partitions_short"]],
        "interval_training_ratio": results["interval_training_cost"]["ratio_with_over_without"],
        "peak_rss": rss_mb(),
    }
    summary = results["summary"]
    results["targets"] = {"smape_m3_monthly <= 14.0": summary["smape_m3_monthly"] <= 14.0,
                          "served smape_m3_monthly <= 14.0": summary["smape_m3_monthly_served_after_gate"] <= 14.0,
                          "models_per_minute >= 300": m3["models_per_minute"] >= 300,
                          "fast models_per_minute >= 2000": fast["models_per_minute"] >= 2000,
                          "coverage_95 in [0.92, 0.97]": 0.92 <= summary["coverage_95"] <= 0.97,
                          "coverage_80 in [0.76, 0.84]": 0.76 <= summary["coverage_80"] <= 0.84,
                          "msis_95 <= 0.8 x seasonal naive's": summary["msis_95_over_seasonal_naive"] <= 0.8,
                          "a third short: no partition without a forecast": short["missing_forecasts"] == 0,
                          "training with intervals >= 0.9 x without": summary["interval_training_ratio"] >= 0.9}
    results.write()
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
