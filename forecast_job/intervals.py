"""Prediction intervals beside every forecast (batch Parquet and POST /api/forecast), calibrated on
the run's own holdout windows. numpy and the stdlib only.

Each model has its own idea of its uncertainty (statsforecast's `level=`: a standard deviation per
horizon step, sigma_h), and those intervals cover less than they claim: they know the noise, not
how wrong the model is (M3 monthly, 95% claimed: 0.89 covered; models.py has the table). So:

1. Training (fit.py) records, per partition, the *standardized holdout errors* of the chosen model and
   of seasonal naive: |actual - forecast| / sigma_h at each step h of each evaluation window.
2. Publish pools them over the run's partitions into a `Calibration`: per level and horizon step the
   split-conformal quantile q of the scores (the ceil((n + 1) * level)-th smallest of n), where the
   step has at least STEP_SCORES scores; with fewer (a table of fewer partitions) the quantile of
   all steps pooled, which the standardization by sigma_h makes comparable. Too few even pooled
   for a level (a tiny table, or a level as high as 99.9) and q is left out.
3. A forecast's interval at step h is mean ± m * sigma_h with m = (q + z) / 2, the mean of the
   conformal quantile and the normal one (z = 1.96 at 95%): `METHOD = "both"`, chosen by measurement
   over q alone and z alone (models.py). Without q, m = z: the model's own interval.

The registered artifact is a `CalibratedModel`: the fitted model, the calibration publish gives it,
and a floor (0 for a series that was never negative: no negative lower bound unless the point
forecast itself is negative). Bounds never cross the point forecast (m >= 0) and widen with the
level. Steps past the calibrated horizon use the last calibrated step's quantile (sigma_h itself
keeps growing with h).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from statistics import NormalDist

import numpy as np

from .levels import DEFAULT_LEVELS

REFERENCE_LEVEL = 95  # sigma_h = half-width of the model's own 95% interval / z(95)
# levels calibrated besides the run's own, so a request for another level interpolates between two
GRID_LEVELS = (50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0, 92.5, 95.0, 97.5, 99.0, 99.5)
STEP_SCORES = 200  # scores a horizon step needs for a quantile of its own (a few at a 95% tail)
METHOD = "both"  # "own": m = z; "conformal": m = q; "both": m = (q + z) / 2 (models.py says why)


def normal_quantile(level: float) -> float:
    """z such that a normal variable is within ±z sigma with probability level %."""
    return NormalDist().inv_cdf(0.5 + level / 200)


def own_sigma(prediction: dict) -> np.ndarray:
    """sigma_h from a statsforecast-shaped prediction made with level=[REFERENCE_LEVEL]."""
    lo, hi = prediction[f"lo-{REFERENCE_LEVEL}"], prediction[f"hi-{REFERENCE_LEVEL}"]
    return (np.asarray(hi, dtype="float64") - np.asarray(lo, dtype="float64")) / (2 * normal_quantile(REFERENCE_LEVEL))


def standardized_errors(actual: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> list[float]:
    """|actual - mean| / sigma per step (inf where a zero sigma missed; 0 where it did not; NaN where
    the model gave no sigma): one evaluation window's conformity scores."""
    error = np.abs(np.asarray(actual, dtype="float64") - mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(sigma > 0, error / sigma, np.where(error > 0, math.inf, 0.0))
    scores[~np.isfinite(sigma)] = math.nan
    return scores.tolist()


def _conformal_quantile(scores: np.ndarray, level: float) -> float | None:
    """The ceil((n + 1) * level)-th smallest score, or None when n is too small for that level."""
    rank = math.ceil((len(scores) + 1) * level / 100)
    if rank > len(scores) or rank < 1:
        return None
    return float(np.partition(scores, rank - 1)[rank - 1])


@dataclass(frozen=True)
class Calibration:
    """Conformal quantiles of a run's standardized holdout errors, per horizon step and level."""

    levels: tuple[float, ...]  # ascending
    per_step: tuple[tuple[float | None, ...], ...]  # [step][level]: None = too few scores at this step
    pooled: tuple[float | None, ...]  # [level]: over every step
    partitions: int  # partitions whose scores went in

    @classmethod
    def from_scores(cls, windows_by_partition: Iterable[Sequence[Sequence[float]]],
                    levels: Iterable[float] = DEFAULT_LEVELS) -> Calibration | None:
        """`windows_by_partition`: for each partition its evaluation windows' scores (one per step).
        None when no partition has any."""
        by_step: list[list[float]] = []
        partitions = 0
        for windows in windows_by_partition:
            counted = False
            for window in windows or ():
                for step, score in enumerate(window):
                    if score is None or math.isnan(score):
                        continue
                    while len(by_step) <= step:
                        by_step.append([])
                    by_step[step].append(float(score))
                    counted = True
            partitions += counted
        if not partitions:
            return None
        wanted = tuple(sorted(set(GRID_LEVELS) | {float(level) for level in levels}))
        steps = [np.asarray(scores) for scores in by_step]
        pooled = np.concatenate(steps)
        return cls(wanted, tuple(tuple(_conformal_quantile(s, level) if len(s) >= STEP_SCORES else None
                                       for level in wanted) for s in steps),
                   tuple(_conformal_quantile(pooled, level) for level in wanted), partitions)

    def quantile(self, level: float, step: int) -> float | None:
        """q at `level` for horizon step `step` (0-based), interpolated between calibrated levels."""
        row = self.per_step[min(step, len(self.per_step) - 1)]
        value = self._interpolated(row, level)
        return value if value is not None else self._interpolated(self.pooled, level)

    def _interpolated(self, row: Sequence[float | None], level: float) -> float | None:
        if level in self.levels:
            return row[self.levels.index(level)]
        above = next((i for i, known in enumerate(self.levels) if known > level), None)
        if above is None or above == 0 or row[above - 1] is None or row[above] is None:
            return None
        low, high = self.levels[above - 1], self.levels[above]
        share = (level - low) / (high - low)
        return row[above - 1] + share * (row[above] - row[above - 1])


def multiplier(calibration: Calibration | None, level: float, step: int, method: str = METHOD) -> float:
    """m in mean ± m * sigma_h."""
    z = normal_quantile(level)
    q = calibration.quantile(level, step) if calibration is not None and method != "own" else None
    if q is None or not math.isfinite(q):
        return z
    return q if method == "conformal" else (q + z) / 2


@dataclass(frozen=True)
class IntervalForecast:
    mean: np.ndarray
    bounds: dict[float, tuple[np.ndarray, np.ndarray]]  # level -> (lo, hi), each of the forecast's length


@dataclass(frozen=True)
class CalibratedModel:
    """A fitted model (statsforecast, or models.Combination) with what its intervals need. Pickled as
    the registry's artifact; `.predict(h)` still answers {"mean": ...} like the model itself."""

    model: object
    calibration: Calibration | None = None
    floor: float | None = None  # lower bounds are not taken below this (0 for never-negative series)
    method: str = METHOD
    spread: bool = True  # False: the history has no spread to measure (one observation): bounds are NaN
    # the model's own sigma per step, by horizon: publish fills the run's horizon, a request any other
    # (statsforecast simulates some models' intervals: ~1.5-6 ms a request, against 0.04 for the mean)
    sigmas: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def predict(self, h: int, level: Sequence[float] | None = None) -> dict[str, np.ndarray]:
        if not level:
            return {"mean": np.asarray(self.model.predict(h=h)["mean"], dtype="float64")}
        found = self.intervals(h, level)
        out = {"mean": found.mean}
        for value, (lo, hi) in found.bounds.items():
            out[f"lo-{value:g}"], out[f"hi-{value:g}"] = lo, hi
        return out

    def sigma(self, h: int) -> np.ndarray:
        """The model's own sigma for each of `h` steps (NaN without a spread), computed once per h."""
        if not self.spread:
            return np.full(h, math.nan)
        known = self.sigmas.get(h)
        if known is None:
            known = self.sigmas[h] = own_sigma(self.model.predict(h=h, level=[REFERENCE_LEVEL]))
        return known

    def intervals(self, h: int, levels: Sequence[float]) -> IntervalForecast:
        mean = np.asarray(self.model.predict(h=h)["mean"], dtype="float64")
        sigma = self.sigma(h)
        widths = np.zeros(h)
        bounds = {}
        for level in sorted(levels):
            factors = np.array([multiplier(self.calibration, level, step, self.method) for step in range(h)])
            widths = np.fmax(widths, factors * np.where(sigma > 0, sigma, 0.0))  # wider with the level
            widths[~np.isfinite(sigma)] = math.nan  # no sigma (a history of one or two points): no interval
            lo, hi = mean - widths, mean + widths
            if self.floor is not None:
                lo = np.where(np.isnan(lo), lo, np.maximum(lo, np.minimum(self.floor, mean)))
            bounds[float(level)] = (lo, hi)
        return IntervalForecast(mean, bounds)

    def calibrated(self, calibration: Calibration | None, horizon: int | None = None) -> CalibratedModel:
        """This model with `calibration`, and its own sigma for `horizon` steps worked out already."""
        ready = replace(self, calibration=calibration, sigmas=dict(self.sigmas))
        if horizon:
            ready.sigma(horizon)
        return ready


def as_calibrated(model: object) -> CalibratedModel:
    """Artifacts registered before intervals existed are bare models: their own intervals."""
    return model if isinstance(model, CalibratedModel) else CalibratedModel(model)


def calibrate_run(records: Iterable[dict], levels: Iterable[float]) -> dict[str, Calibration | None]:
    """A run's calibrations from its trained partitions' result records: "model" (the chosen models'
    standardized holdout errors; short histories use it too) and "baseline" (seasonal naive's, for
    the flagged fallbacks)."""
    trained = [record for record in records if record.get("status") == "trained"]
    levels = tuple(levels)
    return {kind: Calibration.from_scores(((record.get("interval_scores") or {}).get(kind) for record in trained),
                                          levels)
            for kind in ("model", "baseline")}


def calibrated_artifact(data: bytes, calibration: Calibration | None, horizon: int | None = None) -> bytes:
    """A trained artifact (pickle) with the run's calibration in it and its sigma for the run's
    horizon: what the registry stores."""
    import pickle

    ready = as_calibrated(pickle.loads(data)).calibrated(calibration, horizon)
    return pickle.dumps(ready, protocol=pickle.HIGHEST_PROTOCOL)
