"""Prediction intervals: the conformal calibration's arithmetic, the rules every interval keeps
(nested by level, never crossing the point forecast, no negative bound for a never-negative series,
none where there is no spread), and the short-history rule's choice by length."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from forecast_job.intervals import (
    GRID_LEVELS,
    CalibratedModel,
    Calibration,
    as_calibrated,
    calibrate_run,
    calibrated_artifact,
    multiplier,
    normal_quantile,
    standardized_errors,
)
from forecast_job.short_history import fit_short


class Flat:
    """A stand-in model: mean `level`, sigma growing as sqrt(h), intervals as statsforecast shapes them."""

    def __init__(self, mean: float = 10.0, sigma: float = 2.0) -> None:
        self.mean, self.sigma = mean, sigma

    def predict(self, h: int, level: list[int] | None = None) -> dict:
        mean = np.full(h, self.mean)
        out = {"mean": mean}
        for value in level or ():
            width = normal_quantile(value) * self.sigma * np.sqrt(np.arange(1, h + 1))
            out[f"lo-{value}"], out[f"hi-{value}"] = mean - width, mean + width
        return out


def test_the_conformal_quantile_is_the_ceil_n_plus_one_times_level_th_score():
    # 199 partitions, one window of 3 steps: scores 1..199 at steps 0 and 1, and twice as large at step 2
    scores = [[[float(i), float(i), 2.0 * i]] for i in range(1, 200)]
    assert Calibration.from_scores(scores[:-1]).per_step[0][0] is None  # 198 < STEP_SCORES: steps pooled
    calibration = Calibration.from_scores([*scores, [[200.0, 200.0]]], (80, 95))  # step 2 keeps 199 scores
    assert calibration.partitions == 200 and set(GRID_LEVELS) <= set(calibration.levels)
    assert calibration.quantile(95, 0) == 191.0  # 200 scores: rank ceil(201 * 0.95) = 191
    assert calibration.quantile(80, 1) == 161.0  # rank ceil(201 * 0.80) = 161
    pooled = sorted([float(i) for i in range(1, 201)] * 2 + [2.0 * i for i in range(1, 200)])  # 599 scores
    assert calibration.quantile(95, 2) == pooled[math.ceil(600 * 0.95) - 1]  # step 2 has too few: all steps pooled
    assert calibration.quantile(99.5, 2) == pooled[math.ceil(600 * 0.995) - 1]
    assert Calibration.from_scores(scores[:18]).quantile(99, 0) is None  # too few even pooled: left out
    assert calibration.quantile(95, 40) == calibration.quantile(95, 2)  # past the calibrated horizon: the last step's
    between = calibration.quantile(82.5, 0)  # between the grid's 80 and 85: interpolated
    assert calibration.quantile(80, 0) < between < calibration.quantile(85, 0)
    assert multiplier(calibration, 95, 0) == pytest.approx((191 + normal_quantile(95)) / 2)  # "both"
    assert multiplier(calibration, 95, 0, "conformal") == 191.0
    assert multiplier(Calibration.from_scores(scores[:18]), 99, 0) == pytest.approx(normal_quantile(99))  # own
    assert multiplier(None, 80, 0) == pytest.approx(1.2816, abs=1e-4)
    assert Calibration.from_scores([[], None]) is None


def test_standardized_errors_divide_by_the_models_own_sigma():
    scores = standardized_errors(np.array([12.0, 10.0, 9.0, 5.0]), np.array([10.0, 10.0, 10.0, 5.0]),
                                 np.array([1.0, 0.0, 0.0, math.nan]))
    assert scores[:3] == [2.0, 0.0, math.inf] and math.isnan(scores[3])


def test_intervals_are_nested_never_cross_the_forecast_and_respect_the_floor():
    calibration = Calibration.from_scores([[[3.0] * 4]] * 40, (80, 95))  # every score 3: wider than z
    model = CalibratedModel(Flat(mean=1.0, sigma=2.0), calibration, floor=0.0)
    found = model.intervals(4, [95, 60, 80, 99.5])
    assert list(found.bounds) == [60.0, 80.0, 95.0, 99.5] and np.all(found.mean == 1.0)
    widths = [hi - found.mean for _, hi in found.bounds.values()]
    assert np.all(np.diff(np.array(widths), axis=0) >= 0)  # wider with the level, also 99.5 (own, z = 2.81)
    for lo, hi in found.bounds.values():
        assert np.all(lo <= found.mean) and np.all(found.mean <= hi) and np.all(lo >= 0)
    sigma = 2.0 * np.sqrt(np.arange(1, 5))
    assert found.bounds[95.0][1] == pytest.approx(1.0 + (3.0 + normal_quantile(95)) / 2 * sigma)
    negative = CalibratedModel(Flat(mean=-1.0), floor=0.0).intervals(2, [80])  # a forecast below the floor
    assert np.all(negative.bounds[80.0][0] <= -1.0)
    unbounded = CalibratedModel(Flat(mean=1.0)).intervals(2, [95])
    assert np.all(unbounded.bounds[95.0][0] < 0)
    assert np.all(np.isnan(CalibratedModel(Flat(), spread=False).intervals(3, [80]).bounds[80.0][0]))
    assert model.predict(4)["mean"].shape == (4,) and set(model.predict(2, level=[80])) == {"mean", "lo-80", "hi-80"}


def test_artifacts_carry_the_runs_calibration_and_old_ones_serve_their_own_intervals():
    from statsforecast.models import Naive

    bare = Naive().fit(y=np.array([1.0, 3.0, 2.0, 4.0]))
    own = as_calibrated(bare).intervals(3, [95])
    raw = bare.predict(h=3, level=[95])
    assert own.bounds[95.0][1] == pytest.approx(raw["hi-95"])  # an artifact from before intervals: its own
    records = [{"status": "trained", "interval_scores": {"model": [[2.0, 2.0]], "baseline": [[1.0, 1.0]]}}] * 30
    records.append({"status": "failed"})
    calibrations = calibrate_run(records, (80, 95))
    assert calibrations["model"].partitions == 30 and calibrations["baseline"].quantile(95, 1) == 1.0
    stored = pickle.loads(calibrated_artifact(pickle.dumps(CalibratedModel(bare, floor=0.0)), calibrations["model"],
                                              horizon=3))
    assert stored.calibration == calibrations["model"] and stored.floor == 0.0
    expected = (raw["hi-95"] - raw["lo-95"]) / (2 * normal_quantile(95))
    assert list(stored.sigmas) == [3] and stored.sigma(3) == pytest.approx(expected)  # worked out at publish
    # another horizon: on first use, then kept
    stored.intervals(5, [80])
    assert sorted(stored.sigmas) == [3, 5]


@pytest.mark.parametrize(("n", "model_type", "spread"), [(1, "Naive", False), (2, "NaiveAverage", True),
                                                           (11, "NaiveAverage", True), (12, "Combination", True),
                                                           (30, "Combination", True)])
def test_the_short_history_rule_fits_what_the_length_supports(n, model_type, spread):
    y = 100 + 10 * np.sin(np.arange(n) * 2 * np.pi / 12) + np.arange(n)
    fitted = fit_short(y, season_length=12)
    assert fitted.model_type == model_type and fitted.model.spread is spread and fitted.model.floor == 0.0
    found = fitted.model.intervals(18, [80, 95])
    assert found.mean.shape == (18,) and np.all(np.isfinite(found.mean))
    assert bool(np.all(np.isfinite(found.bounds[95.0][0]))) is spread
    if model_type == "Combination":  # seasonal only from two seasons on
        seasons = {member.season_length for member in fitted.model.model.members.values()}
        assert seasons == ({12} if n >= 24 else {1})
