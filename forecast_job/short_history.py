"""The short-history rule: a partition with fewer observations than `min_length` (the evaluation
holdout plus two seasons) still gets a forecast, fitted on all of its history, with no holdout to
choose by; so the choice is made here, by length, from a measurement (bench/short_history.py:
M3 monthly series cut to their last n points, scored on the competition's test period, h = 18;
table in models.py):

- 1 observation: Naive (that value), no interval: there is no spread to measure;
- 2 to 11: the mean of Naive and HistoricAverage (`NaiveAverage`), bounds averaged too: near the
  best of both (sMAPE within 0.4 of HistoricAverage's, MSIS within 1 of Naive's from 2 to 6 points)
  where HistoricAverage's intervals are poor and Naive's point forecasts the worst, and the trend
  models fail to fit (below 8 points) or do worse;
- 12 and more: the default set's combination (AutoETS, DynamicOptimizedTheta, Theta), seasonal from
  two seasons on: the best MSIS from 12 points on and the best sMAPE from 24.

Members that fail to fit are left out (fewer than two left: the simple rule). Intervals: the
model's own, calibrated with the run's calibration (intervals.py) like every other partition.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .intervals import REFERENCE_LEVEL, CalibratedModel
from .models import COMBINATION, Combination

TREND_MODELS_FROM = 12  # observations from which the default combination is fitted
TREND_MEMBERS = ("AutoETS", "DynamicOptimizedTheta", "Theta")
SIMPLE = "NaiveAverage"  # model_type of the mean of Naive and HistoricAverage


@dataclass(frozen=True)
class ShortFit:
    model_type: str
    model: CalibratedModel
    errors: dict[str, str] = field(default_factory=dict)  # members that failed, and why


def _fitted(name: str, y: np.ndarray, season_length: int):
    from statsforecast.models import AutoETS, DynamicOptimizedTheta, HistoricAverage, Naive, Theta

    factories = {"Naive": Naive, "HistoricAverage": HistoricAverage,
                 "AutoETS": lambda: AutoETS(season_length=season_length),
                 "DynamicOptimizedTheta": lambda: DynamicOptimizedTheta(season_length=season_length),
                 "Theta": lambda: Theta(season_length=season_length)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = factories[name]().fit(y=y)
        check = model.predict(h=1, level=[REFERENCE_LEVEL])  # a model that cannot forecast is no member
    if not all(np.all(np.isfinite(values)) for values in check.values()):
        raise ValueError("forecast or interval has missing or infinite values")
    return model


def fit_short(y: np.ndarray, season_length: int) -> ShortFit:
    """The rule's model, fitted on all of `y` (at least one observation)."""
    y = np.asarray(y, dtype="float64")
    n = len(y)
    floor = 0.0 if float(np.min(y)) >= 0 else None
    errors: dict[str, str] = {}
    if n >= TREND_MODELS_FROM:
        season = season_length if n >= 2 * season_length else 1
        members = {}
        for name in TREND_MEMBERS:
            try:
                members[name] = _fitted(name, y, season)
            except Exception as error:  # noqa: BLE001 - recorded; the others carry on
                errors[name] = f"{type(error).__name__}: {error}"
        if len(members) >= 2:
            return ShortFit(COMBINATION, CalibratedModel(Combination(members), floor=floor), errors)
    from statsforecast.models import Naive

    if n == 1:
        return ShortFit("Naive", CalibratedModel(Naive().fit(y=y), floor=floor, spread=False), errors)
    simple = Combination({name: _fitted(name, y, 1) for name in ("Naive", "HistoricAverage")})
    return ShortFit(SIMPLE, CalibratedModel(simple, floor=floor), errors)
