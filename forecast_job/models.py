"""The candidate models per partition (statsforecast) and the named sets to choose among.

Each candidate is a statsforecast model object (fit / predict / forecast over one series); the
parallelism lives outside, in train.py. Measured on the 1,428 M3 monthly series (h=18, scored on
the competition's test period, one process, load average ~3 on 2 cores):

| model (alone, every series) | sMAPE | ms per series (fit + forecast) |
|---|---|---|
| SeasonalNaive | 17.23 | 0.1 |
| Theta | 13.83 | 2.6 |
| DynamicOptimizedTheta | 13.73 | 5.4 |
| AutoETS | 14.16 | 115 |
| AutoCES | 15.41 | 7 |
| AutoTheta | 14.97 | 16 |
| AutoARIMA (first 60 series) | - | 780 |
| mean of AutoETS, DynamicOptimizedTheta, Theta | 13.51 | - |

Choosing per series the candidate with the lowest error on one 18-point holdout did worse than
any of the good models alone (14.50 with seasonal naive selectable, 14.08 without): one short
holdout is a noisy judge. Hence (fit.py) the combination is the default choice and a single model
replaces it only when it beats it on the holdout by more than `selection_margin` (20%: 13.68;
10%: 13.78; never: 13.51), and seasonal naive is the baseline, never selected. The sets:

- `default`: AutoETS, DynamicOptimizedTheta, Theta and their mean;
- `fast`: DynamicOptimizedTheta, Theta and their mean (13.59 at a 20% margin; no AutoETS, whose
  fit is 95% of the default set's time);
- `full`: the default set plus AutoCES and AutoARIMA (~0.8 s a series: not in the default set,
  whose target is >= 300 partitions a minute on 2 cores).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BASELINE = "SeasonalNaive"
COMBINATION = "Combination"


@dataclass(frozen=True)
class ModelSet:
    singles: tuple[str, ...]  # candidates evaluated and selectable one by one
    combined: tuple[str, ...]  # the members the Combination candidate averages


MODEL_SETS: dict[str, ModelSet] = {
    "fast": ModelSet(("DynamicOptimizedTheta", "Theta"), ("DynamicOptimizedTheta", "Theta")),
    "default": ModelSet(("AutoETS", "DynamicOptimizedTheta", "Theta"), ("AutoETS", "DynamicOptimizedTheta", "Theta")),
    "full": ModelSet(("AutoETS", "DynamicOptimizedTheta", "Theta", "AutoCES", "AutoARIMA"),
                     ("AutoETS", "DynamicOptimizedTheta", "Theta")),
}


def _factories() -> dict[str, Callable[[int], object]]:
    from statsforecast.models import AutoARIMA, AutoCES, AutoETS, DynamicOptimizedTheta, SeasonalNaive, Theta

    return {
        BASELINE: lambda m: SeasonalNaive(season_length=m),
        "Theta": lambda m: Theta(season_length=m),
        "DynamicOptimizedTheta": lambda m: DynamicOptimizedTheta(season_length=m),
        "AutoETS": lambda m: AutoETS(season_length=m),
        "AutoCES": lambda m: AutoCES(season_length=m),
        "AutoARIMA": lambda m: AutoARIMA(season_length=m),
    }


def make_model(name: str, season_length: int):
    """A fresh, unfitted statsforecast model."""
    return _factories()[name](season_length)


class Combination:
    """The mean of its members' forecasts (each a fitted statsforecast model), and with `level` the
    mean of their interval bounds. Picklable: the registry stores it like any single model."""

    def __init__(self, members: dict[str, object]) -> None:
        self.members = members

    def predict(self, h: int, level: list[int] | None = None) -> dict[str, np.ndarray]:
        predictions = [member.predict(h=h, **({"level": level} if level else {})) for member in self.members.values()]
        return {key: np.mean([p[key] for p in predictions], axis=0) for key in predictions[0]}

    def __repr__(self) -> str:
        return f"Combination({', '.join(self.members)})"
