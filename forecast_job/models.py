"""The candidate models per partition (statsforecast) and the named sets to choose among.

Each candidate is a statsforecast model object (fit / predict / forecast over one series); the
parallelism lives outside, in train.py. Sets, measured on the 1,428 M3 monthly series (h=18, the
competition's test period, one process, bench/many_models.py has the end-to-end figures):

| model | sMAPE | ms per series (fit+forecast) |
|---|---|---|
| SeasonalNaive | 17.23 | 0.1 |
| Theta | 13.83 | 2.6 |
| DynamicOptimizedTheta | 13.73 | 5.4 |
| AutoETS | 14.16 | 115 |
| AutoCES | 15.41 | 7 |
| AutoTheta | 14.97 | 16 |
| AutoARIMA (first 60 series) | - | 780 |
| mean of AutoETS, DOTM, AutoCES | 13.63 | - |

(load average about 3 on 2 cores while measured.) So the `default` set is seasonal naive, AutoETS,
DynamicOptimizedTheta, AutoCES and their combination (mean), chosen per partition by holdout;
`fast` drops the slow AutoETS; `full` adds AutoARIMA, which alone costs ~0.8 s a series and is
why it is not in the default set (the target is >= 300 partitions a minute on 2 cores).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BASELINE = "SeasonalNaive"
COMBINATION = "Combination"

MODEL_SETS: dict[str, tuple[str, ...]] = {
    "fast": (BASELINE, "Theta", "DynamicOptimizedTheta"),
    "default": (BASELINE, "AutoETS", "DynamicOptimizedTheta", "AutoCES", COMBINATION),
    "full": (BASELINE, "AutoETS", "DynamicOptimizedTheta", "AutoCES", "AutoARIMA", COMBINATION),
}
# The members a set's combination averages: every candidate but the baseline (and AutoARIMA, whose
# forecasts are the least stable of the set on short series).
COMBINED = ("AutoETS", "DynamicOptimizedTheta", "AutoCES")


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
    """The mean of its members' forecasts (each a fitted statsforecast model). Picklable: the
    registry stores it like any single model."""

    def __init__(self, members: dict[str, object]) -> None:
        self.members = members

    def predict(self, h: int) -> dict[str, np.ndarray]:
        return {"mean": np.mean([member.predict(h=h)["mean"] for member in self.members.values()], axis=0)}

    def __repr__(self) -> str:
        return f"Combination({', '.join(self.members)})"
