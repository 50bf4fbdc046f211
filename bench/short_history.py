"""The short-history rule measured: M3 monthly series cut to their last n points, fitted on all of
them (no holdout), scored on the competition's test period (h = 18).

    python bench/short_history.py [--quick] [--workers 2]

For each length n (1, 2, 3, 6, 12, 13, 24, 36; the issue's 13, 24 and 36 among them) every one of
the 1,428 series is cut to its last n training points, and the rule (forecast_job.short_history)
and the simple or trend candidates it chose among are fitted on them. Scores: sMAPE (M3's) of the
point forecast; coverage of the 80% and 95% intervals and MSIS of the 95% one (scaled by the
seasonal-naive MAE of the *whole* training part, so lengths compare on one scale), with the
models' own intervals; for the rule also with the calibration a run would give it: the one
publish computes from the long partitions (here: the default set trained on the full training
parts of the same series, as in bench/many_models.py). Writes bench/results/short_history.json
and prints the table docs and models.py carry. `--quick`: the first 48 series.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import BenchReport, quick_path
from forecast_job.fit import train_series
from forecast_job.intervals import REFERENCE_LEVEL, CalibratedModel, Calibration
from forecast_job.metrics import naive_scale, smape
from forecast_job.models import Combination
from forecast_job.short_history import fit_short
from tools.competition_series import monthly

RESULTS = Path(__file__).resolve().parent / "results"
LENGTHS = (1, 2, 3, 6, 12, 13, 24, 36)
SEASON = 12
LEVELS = (80.0, 95.0)
CANDIDATES = ("Naive", "HistoricAverage", "NaiveAverage", "AutoETS", "Combination")


def msis(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, scale: float, alpha: float = 0.05) -> float:
    """M4's mean scaled interval score of one (lo, hi) interval at level 1 - alpha."""
    score = (hi - lo) + 2 / alpha * (lo - y) * (y < lo) + 2 / alpha * (y - hi) * (y > hi)
    return float(np.mean(score) / scale)


def _candidate(name: str, y: np.ndarray):
    """A candidate the rule chose among, fitted on all of `y` (season only from two seasons)."""
    from statsforecast.models import AutoETS, DynamicOptimizedTheta, HistoricAverage, Naive, Theta

    season = SEASON if len(y) >= 2 * SEASON else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "NaiveAverage":
            return Combination({"Naive": Naive().fit(y=y), "HistoricAverage": HistoricAverage().fit(y=y)})
        if name == "Combination":
            return Combination({"AutoETS": AutoETS(season_length=season).fit(y=y),
                                "DynamicOptimizedTheta": DynamicOptimizedTheta(season_length=season).fit(y=y),
                                "Theta": Theta(season_length=season).fit(y=y)})
        return {"Naive": Naive, "HistoricAverage": HistoricAverage,
                "AutoETS": lambda: AutoETS(season_length=season)}[name]().fit(y=y)


def _scores(model: CalibratedModel, test: np.ndarray, scale: float) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = model.intervals(len(test), LEVELS)
    out = {"smape": smape(test, found.mean)}
    if not np.all(np.isfinite(found.mean)):
        return {"failed": True}
    for level, (lo, hi) in found.bounds.items():
        if np.all(np.isfinite(lo)):
            out[f"coverage_{level:g}"] = float(np.mean((test >= lo) & (test <= hi)))
    lo, hi = found.bounds[95.0]
    if np.all(np.isfinite(lo)):
        out["msis_95"] = msis(test, lo, hi, scale)
    return out


def long_scores(task: tuple[np.ndarray, np.ndarray]) -> list[list[float]]:
    """The chosen model's standardized holdout errors on the whole training part (what publish
    calibrates a run's intervals with)."""
    y, test = task
    return train_series(y, horizon=len(test), season_length=SEASON).interval_scores["model"]


def short_fits(task: tuple[np.ndarray, np.ndarray, Calibration | None]) -> dict:
    """Per length, the rule's and the candidates' scores on one series."""
    y, test, calibration = task
    scale = naive_scale(y, SEASON)
    out = {}
    for n in LENGTHS:
        cut = y[-n:]
        rule = fit_short(cut, SEASON)
        rows = {"rule (own intervals)": (rule.model_type, _scores(rule.model, test, scale)),
                "rule (both intervals)": (rule.model_type, _scores(rule.model.calibrated(calibration), test, scale))}
        for name in CANDIDATES:
            try:
                model = CalibratedModel(_candidate(name, cut), floor=rule.model.floor)
            except Exception:  # noqa: BLE001 - a candidate that cannot fit this length is counted as failed
                rows[name] = (name, {"failed": True})
                continue
            rows[name] = (name, _scores(model, test, scale))
        out[n] = rows
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, help="where to write the JSON")
    args = parser.parse_args()
    report = BenchReport(quick_path(RESULTS / "short_history.json", args.quick, args.output), "short_history")
    data = monthly("m3", limit=48 if args.quick else None)
    series = data.table.groupby("series", sort=True).target.apply(np.asarray)
    tasks = [(series[name], data.test[name]) for name in series.index]
    with ProcessPoolExecutor(args.workers) as pool:
        calibration = Calibration.from_scores(pool.map(long_scores, tasks, chunksize=8), LEVELS)
        results = list(pool.map(short_fits, [(y, test, calibration) for y, test in tasks], chunksize=8))
    table = {}
    for n in LENGTHS:
        rows = {}
        for name in results[0][n]:
            scored = [score for _, score in (r[n][name] for r in results) if not score.get("failed")]
            row = {"failed": len(results) - len(scored)}
            for key in ("smape", "coverage_80", "coverage_95", "msis_95"):
                values = [s[key] for s in scored if key in s]
                row[key] = round(float(np.mean(values)), 3) if values else None
            if name.startswith("rule"):
                kinds = [kind for kind, _ in (r[n][name] for r in results)]
                row["chosen"] = {kind: kinds.count(kind) for kind in sorted(set(kinds))}
            rows[name] = row
        table[n] = rows
        print(f"n = {n}: " + json.dumps(rows), flush=True)
    report.update(series=len(tasks), horizon=data.horizon, reference_level=REFERENCE_LEVEL,
                  calibration_partitions=calibration.partitions if calibration else 0, lengths=table)
    report.write()
    print("| n | rule (model) | sMAPE | own 80 / 95 / MSIS | calibrated 80 / 95 / MSIS | "
          + " | ".join(f"{c} sMAPE / MSIS" for c in CANDIDATES) + " |")
    for n, rows in table.items():
        own, both = rows["rule (own intervals)"], rows["rule (both intervals)"]
        cells = [f"{rows[c]['smape']} / {rows[c]['msis_95']}" if rows[c]["smape"] is not None else "fails"
                 for c in CANDIDATES]
        print(f"| {n} | {', '.join(own['chosen'])} | {own['smape']} | {own['coverage_80']} / {own['coverage_95']} / "
              f"{own['msis_95']} | {both['coverage_80']} / {both['coverage_95']} / {both['msis_95']} | "
              + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
