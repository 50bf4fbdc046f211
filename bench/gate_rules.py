"""What the gate costs in served accuracy: how its relative MAE pools the evaluation windows, and
what a partition whose chosen model fails it serves.

    python bench/gate_rules.py [--quick] [--workers 2]

The served sMAPE of many models missed its target (<= 14.0 on M3 monthly) because of the gate, not
the models: a partition whose chosen model failed `relative_mae < 1` served its seasonal naive. This
study fits every candidate once per series on up to three evaluation windows and on the whole
training part, then replays selection (fit._select, margin 0.2 and "always the combination") and the
gate offline, scored on the competition's test periods, for:

- relative MAE as a `mean of ratios` (per window, then the mean: what gate.py judged before) or
  `pooled` (metrics.mean_metrics: the MAE over all the holdout's points over seasonal naive's MAE
  over the same points; one window where seasonal naive happens to be near-exact no longer decides);
- the fallback of a choice that fails: `seasonal naive` (before) or the `next passing` candidate
  (fit._passing: the lowest selection metric among those that pass; seasonal naive only where none does).

All keep the business rule (< 1: beats seasonal naive). The refit on all data searches AutoETS
again here (production keeps the form chosen on the latest window), so figures sit ~0.01 from
bench/many_models.py's. Writes bench/results/gate_rules.json. `--quick`: 12 series of each dataset.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import BenchReport, quick_path
from forecast_job.fit import _forecast, _origins, _passing, _select
from forecast_job.frequency import windows_for
from forecast_job.gate import GateRule
from forecast_job.metrics import mean_metrics, smape, window_metrics
from forecast_job.models import BASELINE, COMBINATION, MODEL_SETS
from tools.competition_series import monthly

RESULTS = Path(__file__).resolve().parent / "results"
SEASON = 12
MOST_WINDOWS = 3
SINGLES = MODEL_SETS["default"].singles
MARGINS = {"0.2 (default)": 0.2, "always the combination": 1.0}


def fit_all(task: tuple[np.ndarray, int]) -> dict:
    """Every candidate's forecasts on each evaluation window (oldest first) and from all of `y`."""
    y, horizon = task
    origins = _origins(len(y), horizon, windows_for(len(y), horizon, SEASON, MOST_WINDOWS))
    held, whole = {}, {}
    for name in (BASELINE, *SINGLES):
        try:
            held[name] = [_forecast(name, y[:origin], horizon, SEASON, {}, spread=False)[0] for origin in origins]
            whole[name] = _forecast(name, y, horizon, SEASON, {}, spread=False)[0]
        except Exception:
            if name == BASELINE:
                raise
    members = [name for name in SINGLES if name in held]
    held[COMBINATION] = [np.mean([held[m][w] for m in members], axis=0) for w in range(len(origins))]
    whole[COMBINATION] = np.mean([whole[m] for m in members], axis=0)
    return {"origins": origins, "held": held, "whole": whole}


def served(fits: list[dict], series: list[tuple[np.ndarray, np.ndarray]], windows: int, margin: float,
           pooled: bool, next_passing: bool) -> dict:
    """Replay selection and the gate with the latest `windows` evaluation windows of each series."""
    rule = GateRule()
    scores, models, fallbacks = [], [], 0
    for fit, (y, test) in zip(fits, series, strict=True):
        origins = fit["origins"][-windows:]
        first = len(fit["origins"]) - len(origins)
        per_window = {name: [window_metrics(y[o:o + len(test)], forecasts[first + w], y[:o], SEASON,
                                            fit["held"][BASELINE][first + w]) for w, o in enumerate(origins)]
                      for name, forecasts in fit["held"].items()}
        candidates = {name: mean_metrics(metrics) | ({} if pooled else {
            "relative_mae": float(np.mean([window["relative_mae"] for window in metrics]))})
            for name, metrics in per_window.items()}
        chosen = _select(candidates, [n for n in SINGLES if n in candidates], "mase", margin)
        models.append(smape(test, _floored(fit["whole"][chosen], y)))
        if next_passing:
            chosen = _passing(candidates, chosen, "mase", rule)
        passes = rule.passes(candidates[chosen])
        scores.append(smape(test, _floored(fit["whole"][chosen], y)) if passes
                      else smape(test, fit["whole"][BASELINE]))
        fallbacks += not passes
    return {"served_smape": round(float(np.mean(scores)), 3), "models_smape": round(float(np.mean(models)), 3),
            "seasonal_naive_served": fallbacks}


def _floored(forecast: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.maximum(forecast, 0) if y.min() >= 0 else forecast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke: the first 12 series of each dataset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, help="results file (default bench/results/gate_rules.json)")
    args = parser.parse_args()
    report = BenchReport(quick_path(RESULTS / "gate_rules.json", args.quick, args.output), "gate_rules",
                         quick=args.quick, datasets={})
    for dataset in ("m3", "tourism"):
        with report.part(dataset):
            data = monthly(dataset, limit=12 if args.quick else None)
            series = [(group["target"].to_numpy(), data.test[name])
                      for name, group in data.table.groupby("series", sort=False)]
            with ProcessPoolExecutor(args.workers) as pool:
                fits = list(pool.map(fit_all, [(y, data.horizon) for y, _ in series], chunksize=8))
            rows = [{"windows": windows, "margin": label, "relative_mae": aggregation, "fallback": fallback,
                     **served(fits, series, windows, margin, aggregation == "pooled", fallback == "next passing")}
                    for windows in range(1, MOST_WINDOWS + 1) for label, margin in MARGINS.items()
                    for aggregation in ("mean of ratios", "pooled") for fallback in ("seasonal naive", "next passing")]
            report["datasets"][dataset] = {"series": len(series), "horizon": data.horizon, "rows": rows}
            print(f"\n{dataset}: windows | margin | relative MAE | fallback | served sMAPE | models sMAPE "
                  "| seasonal naive served")
            for row in rows:
                print(" | ".join(str(value) for value in row.values()))
    report.write()


if __name__ == "__main__":
    main()
