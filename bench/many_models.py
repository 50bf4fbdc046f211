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
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import BenchReport, quick_path
from forecast_job.gate import GateRule
from forecast_job.manifest import prepare_work
from forecast_job.metrics import mase, smape
from forecast_job.mlflow_registry import MlflowRegistry
from forecast_job.options import TableOptions, TrainOptions
from forecast_job.publish import publish
from forecast_job.registry import FolderArtifacts, IndexRegistry, NewVersion
from forecast_job.table import read_table
from forecast_job.train import read_results, run_local
from tools.competition_series import monthly

RESULTS = Path(__file__).resolve().parent / "results"


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


def run_case(dataset: str, model_set: str, workers: int, limit: int | None, root: Path) -> dict:
    data = monthly(dataset, limit=limit)
    folder = root / f"{dataset}-{model_set}"
    upload = folder / "upload.csv"
    folder.mkdir(parents=True)
    data.table.to_csv(upload, index=False)
    train_options = TrainOptions(horizon=data.horizon, model_set=model_set)

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
    own, naive = {}, {}
    for record in records:
        name = record["keys"]["series"]
        partition = folder / "out" / record["partition_id"]
        own[name] = pickle.loads((partition / "model.pkl").read_bytes()).predict(h=data.horizon)["mean"]
        naive[name] = pickle.loads((partition / "baseline.pkl").read_bytes()).predict(h=data.horizon)["mean"]
    metrics = pd.read_parquet(summary.metrics)
    partitions = len(manifest.partitions)
    # What each gate rule would serve on a first run (no champions): the model where it passes, else
    # the flagged seasonal naive. Measured from the same models, so the rules compare side by side.
    by_series = metrics.set_index("series")
    if_served = {}
    for rule in (GateRule(), GateRule(metric="mase"), GateRule(metric="accuracy", threshold=0.8)):
        served_forecasts = {name: own[name] if rule.passes(by_series.loc[name].to_dict()) else naive[name]
                            for name in own}
        if_served[rule.describe()] = score(served_forecasts, data)["smape"]
    cpu_seconds = sum(r["seconds"] for r in records)
    return {
        "dataset": dataset, "model_set": model_set, "partitions": partitions, "rejected": len(table.rejections),
        "failed": len(failed), "horizon": data.horizon,
        "served": score(served_by_series, data), "selected_models": score(own, data),
        "seasonal_naive": score(naive, data),
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
    cases = [("m3", "default"), ("m3", "fast"), ("tourism", "default")]
    results = BenchReport(quick_path(RESULTS / "many_models.json", args.quick, args.output), "many_models",
                          machine={"cpus": os.cpu_count(), "python": platform.python_version()},
                          quick=args.quick, cases=[])
    with tempfile.TemporaryDirectory(prefix="many-models-") as scratch:
        root = Path(scratch)
        for dataset, model_set in cases:
            with results.part(f"{dataset}:{model_set}"):
                case = run_case(dataset, model_set, args.workers, limit, root)
                registry, records = case.pop("_versions")
                registry.close()
                results["cases"].append(case)
                print(json.dumps(case), flush=True)
                if (dataset, model_set) == ("m3", "default"):
                    results["registry_cost"] = registration_costs(records, sample, root)
                    print(json.dumps(results["registry_cost"]), flush=True)
    by_case = {(c["dataset"], c["model_set"]): c for c in results["cases"]}
    m3, fast, tourism = by_case["m3", "default"], by_case["m3", "fast"], by_case["tourism", "default"]
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
        "peak_rss": rss_mb(),
    }
    results["targets"] = {"smape_m3_monthly <= 14.0": results["summary"]["smape_m3_monthly"] <= 14.0,
                          "models_per_minute >= 300": m3["models_per_minute"] >= 300,
                          "fast models_per_minute >= 2000": fast["models_per_minute"] >= 2000}
    results.write()
    print(json.dumps(results["summary"], indent=2))


if __name__ == "__main__":
    main()
