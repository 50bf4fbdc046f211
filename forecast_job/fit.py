"""One partition's training: evaluate the candidates on held-out windows, pick one, refit it on
all the data. A pure function of the series and the options (no I/O), so the Azure ML entry, the
local process pool, tests and the benchmark all call the same code.

Evaluation: up to `windows` origins (1 = a plain holdout; as many as the series' length supports),
each holding out the `horizon` points that follow it; a candidate's metrics are averaged over the
windows (its relative MAE pooled: metrics.mean_metrics). Two by default: on M3 monthly (before the
gate's fallback below) a second window took served sMAPE from 14.22 to 14.10 and the 95% interval's
MSIS from 0.809x to 0.774x seasonal naive's (more holdout errors to calibrate with, a steadier
gate), for 1.6x the training time (docs/many-models.md). Seasonal naive is evaluated too:
its forecasts are the baseline every candidate's `relative_mae` is measured against, and its fit
on all the data is kept as the fallback the gate may serve. Selection (measured in models.py):
the combination, unless a single model's selection metric is lower by more than
`selection_margin` (a fraction of the combination's). If that choice fails the promotion gate's
rule on the holdout, the candidate with the next lowest selection metric that passes takes its
place; only where none passes does the gate serve seasonal naive (bench/gate_rules.py: on M3
monthly this took served sMAPE from 14.08 to 13.93 and the fallbacks from 246 to 190; on Tourism
monthly from 19.32 to 19.12). A candidate that raises is left out (its error recorded); if nothing
else is left, seasonal naive is the model.

Every holdout forecast is made with the model's own interval too (intervals.py): the chosen model's
and seasonal naive's standardized holdout errors are kept, for publish to calibrate the intervals of
the whole run with. The fitted models come back as `CalibratedModel`s (floor 0 for a series that was
never negative).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from .frequency import windows_for
from .gate import GateRule
from .intervals import REFERENCE_LEVEL, CalibratedModel, own_sigma, standardized_errors
from .metrics import mean_metrics, window_metrics
from .models import BASELINE, COMBINATION, MODEL_SETS, Combination, make_model

AUTO_ETS = "AutoETS"


@dataclass(frozen=True)
class Trained:
    model_type: str  # the chosen candidate's name
    model: CalibratedModel  # fitted on all of the series; .predict(h) -> {"mean": array}
    baseline: CalibratedModel  # seasonal naive fitted on all of the series (served, flagged, when nothing passes)
    metrics: dict[str, float]  # the chosen candidate's evaluation metrics
    baseline_metrics: dict[str, float]
    candidates: dict[str, dict[str, float]]  # every candidate's evaluation metrics
    errors: dict[str, str] = field(default_factory=dict)  # candidates that failed, and why
    # standardized holdout errors, per window and step, of the chosen model ("model") and seasonal naive
    interval_scores: dict[str, list[list[float]]] = field(default_factory=dict)
    windows: int = 1  # evaluation windows the series' length allowed (at most the option's)
    preferred: str = ""  # the selection's choice where it failed the gate and `model_type` passes instead


def _origins(n: int, horizon: int, windows: int) -> list[int]:
    """Training lengths of the evaluation windows, oldest first; the last holds out the final `horizon`."""
    return [n - horizon * (windows - w) for w in range(windows)]


def _forecast(name: str, y: np.ndarray, horizon: int, season_length: int, specs: dict[str, str],
              spread: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The candidate's forecast from `y` and its own sigma per step (NaN without `spread`). AutoETS
    also leaves the ETS form it chose in `specs`."""
    level = {"level": [REFERENCE_LEVEL]} if spread else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == AUTO_ETS:
            model = make_model(name, season_length).fit(y=y)
            specs[name] = model.model_["components"]  # e.g. "MADN": error, trend, season, damped
            prediction = model.predict(h=horizon, **level)
        else:
            prediction = make_model(name, season_length).forecast(y=y, h=horizon, **level)
    mean = np.asarray(prediction["mean"], dtype="float64")
    if mean.shape != (horizon,) or not np.all(np.isfinite(mean)):
        raise ValueError("forecast has missing or infinite values")
    return mean, own_sigma(prediction) if spread else np.full(horizon, np.nan)


def _fit(name: str, y: np.ndarray, season_length: int, members: tuple[str, ...], specs: dict[str, str]):
    """Fit on all of `y`. AutoETS keeps the form it chose on the latest evaluation window and
    re-estimates only its parameters: ~4 ms instead of ~300 ms for a second search over every form
    (M3 monthly, measured with the load average near 5), which was 60% of the default set's time."""
    if name == COMBINATION:
        return Combination({member: _fit(member, y, season_length, members, specs) for member in members})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = specs.get(name)
        if name == AUTO_ETS and spec:
            from statsforecast.models import AutoETS

            return AutoETS(season_length=season_length, model=spec[:3], damped=spec[3] == "D").fit(y=y)
        return make_model(name, season_length).fit(y=y)


def train_series(y: np.ndarray, *, horizon: int, season_length: int, model_set: str = "default",
                 windows: int = 2, selection_metric: str = "mase", selection_margin: float = 0.2,
                 spread: bool = True, gate: GateRule | None = None) -> Trained:
    """Up to `windows` evaluation windows, as many as the series' length supports (frequency.windows_for).
    `spread=False` leaves out the holdout's interval spreads (no interval scores: the run's
    intervals are then the models' own); bench/many_models.py times training both ways side by side."""
    chosen_set = MODEL_SETS[model_set]
    windows = windows_for(len(y), horizon, season_length, windows)
    origins = _origins(len(y), horizon, windows)
    if origins[0] < 2:
        raise ValueError(f"series of {len(y)} points is too short for an evaluation holdout of {horizon}")
    forecasts: dict[str, list[np.ndarray]] = {}
    sigmas: dict[str, list[np.ndarray]] = {}
    errors: dict[str, str] = {}
    specs: dict[str, str] = {}  # left by the latest window (the most data), so the refit keeps its form
    for name in (BASELINE, *chosen_set.singles):
        try:
            forecasts[name], sigmas[name] = map(list, zip(*(_forecast(name, y[:origin], horizon, season_length, specs,
                                                                      spread) for origin in origins), strict=True))
        except Exception as error:
            if name == BASELINE:
                raise
            errors[name] = f"{type(error).__name__}: {error}"
    members = tuple(name for name in chosen_set.combined if name in forecasts)
    if len(members) >= 2:  # the combination's interval is the mean of its members' bounds (models.Combination)
        forecasts[COMBINATION], sigmas[COMBINATION] = (
            [np.mean([per_model[m][w] for m in members], axis=0) for w in range(windows)]
            for per_model in (forecasts, sigmas))
    candidates = {}
    for name, per_window in forecasts.items():
        candidates[name] = mean_metrics([
            window_metrics(y[origin:origin + horizon], per_window[w], y[:origin], season_length,
                           forecasts[BASELINE][w])
            for w, origin in enumerate(origins)])
    preferred = _select(candidates, [n for n in chosen_set.singles if n in candidates], selection_metric,
                        selection_margin)
    chosen = _passing(candidates, preferred, selection_metric, gate or GateRule())
    baseline = _fit(BASELINE, y, season_length, members, specs)
    model = baseline if chosen == BASELINE else _fit(chosen, y, season_length, members, specs)
    scores = {kind: [standardized_errors(y[origin:origin + horizon], forecasts[name][w], sigmas[name][w])
                     for w, origin in enumerate(origins)]
              for kind, name in (("model", chosen), ("baseline", BASELINE))}
    floor = 0.0 if float(np.min(y)) >= 0 else None
    return Trained(chosen, CalibratedModel(model, floor=floor), CalibratedModel(baseline, floor=floor),
                   candidates[chosen], candidates[BASELINE], candidates, errors, scores, windows,
                   preferred if chosen != preferred else "")


def _select(candidates: dict[str, dict[str, float]], singles: list[str], metric: str, margin: float) -> str:
    if not singles:
        return BASELINE
    best = min(singles, key=lambda name: (_finite(candidates[name][metric]), singles.index(name)))
    if COMBINATION not in candidates:
        return best
    combined = _finite(candidates[COMBINATION][metric])
    return best if _finite(candidates[best][metric]) < (1 - margin) * combined else COMBINATION


def _passing(candidates: dict[str, dict[str, float]], preferred: str, metric: str, gate: GateRule) -> str:
    """`preferred` if it passes the gate, else the passing candidate with the lowest selection
    metric, else `preferred` (the gate then serves seasonal naive, flagged)."""
    if preferred == BASELINE or gate.passes(candidates[preferred]):
        return preferred
    others = sorted((name for name in candidates if name not in (BASELINE, preferred)),
                    key=lambda name: _finite(candidates[name][metric]))
    return next((name for name in others if gate.passes(candidates[name])), preferred)


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf
