"""A table's frequency, its season, the default horizon and how long a series must be.

Inferred from the spacing of the partitions' timestamps, not from a perfectly regular run:
`pandas.infer_freq` needs every step equal, so daily sales with 2% of the days missing (no row on
a day without sales) had no partition it could read, and the whole table was refused. Here each
sampled partition votes with `infer_freq` where its steps are regular, else with its most common
step read on the calendar (a day: business days if no date falls on a weekend; seven days: weeks
ending on that weekday; 28-31 days: month starts or ends; ...), and the gaps are then found (and
reported, or filled with `fill_gaps`) on that frequency's grid.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

NO_SEASON_HORIZON = 10
SHORT_SEASON = 24  # up to this period a series must hold two seasons; longer ones (weekly: 52) one
DAY = np.timedelta64(1, "D")
# offset class name -> its usual seasonal period; matched exactly, so BusinessDay is not Day
SEASONS = {"MonthBegin": 12, "MonthEnd": 12, "QuarterBegin": 4, "QuarterEnd": 4, "Week": 52, "Day": 7,
           "BusinessDay": 5, "Hour": 24, "Minute": 60}
HORIZONS = {"Week": 13}  # a quarter ahead, as the M4 competition forecast weekly series; else one season
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def season_length_for(freq: str) -> int:
    """The usual seasonal period of a pandas frequency: 12 monthly, 4 quarterly, 52 weekly, 7 daily,
    5 business-daily, 24 hourly; 1 (none) otherwise or where a multiple (e.g. `2MS`) does not divide it."""
    offset = to_offset(freq)
    base = SEASONS.get(type(offset).__name__, 1)
    n = abs(getattr(offset, "n", 1)) or 1
    return base // n if base % n == 0 and base // n > 1 else 1


def default_horizon(freq: str, season: int) -> int:
    """One season ahead (12 months, 4 quarters, 7 days), a quarter for weekly data, else 10 periods."""
    if (name := type(to_offset(freq)).__name__) in HORIZONS and season > 1:
        return HORIZONS[name]
    return season if season > 1 else NO_SEASON_HORIZON


def history_needed(season: int) -> int:
    """Points a model needs before an evaluation holdout: two seasons for short ones (seasonal naive
    and the decompositions need them), one for long ones (52 weeks: two would ask for 3 years of
    weekly history before a first model), at least 8 points."""
    return max(2 * season if season <= SHORT_SEASON else season, 8)


def min_length_for(horizon: int, season: int) -> int:
    """One evaluation holdout plus the history before it: shorter partitions are short histories."""
    return horizon + history_needed(season)


def windows_for(n: int, horizon: int, season: int, windows: int) -> int:
    """Evaluation windows a partition of `n` points gets: up to `windows`, as many as leave
    `history_needed` points before the oldest, at least one."""
    return max(1, min(windows, (n - history_needed(season)) // horizon))


STEADY = 0.5  # at least this share of a partition's steps must be exactly one period of its frequency


def partition_frequency(ds: np.ndarray) -> str | None:
    """One partition's frequency (sorted, distinct datetime64 values), or None if it cannot tell: a
    candidate read off the most common step counts only where most steps are exactly one period of
    it and none is shorter (gaps are longer steps; random spacing is no frequency)."""
    if len(ds) < 3:
        return None
    index = pd.DatetimeIndex(ds)
    regular = pd.infer_freq(index)
    if regular:
        return regular
    candidate = _candidate(index, np.diff(ds))
    if candidate is None:
        return None
    expected = (index[:-1] + to_offset(candidate)).to_numpy()
    steps = index[1:].to_numpy()
    if (steps < expected).any() or (steps == expected).mean() < STEADY:
        return None
    return candidate


def _candidate(index: pd.DatetimeIndex, steps: np.ndarray) -> str | None:
    """The frequency the most common step suggests, read on the calendar."""
    values, counts = np.unique(steps, return_counts=True)
    step = values[np.argmax(counts)]
    if step <= np.timedelta64(0, "ns"):
        return None
    if step % DAY:
        return to_offset(pd.Timedelta(step)).freqstr  # hours, minutes: the step itself
    days = int(step // DAY)
    if days == 1:
        return "B" if (index.dayofweek < 5).all() and (steps == 3 * DAY).any() else "D"
    if days == 7:
        return "W-" + index[0].day_name()[:3].upper()
    # months, quarters and years: anchored where the first timestamp falls (a quarter of Feb, May, ...)
    month = index[0].month - 1
    calendar = {range(28, 32): ("MS", "ME"),
                range(89, 93): (f"QS-{MONTHS[month % 3]}", f"QE-{MONTHS[(month + 9) % 12]}"),
                range(365, 367): (f"YS-{MONTHS[month]}", f"YE-{MONTHS[month]}")}
    for span, (start, end) in calendar.items():
        if days in span:
            if (index.day == 1).all():
                return start
            if index.is_month_end.all():
                return end
            return None
    return f"{days}D"


def infer_frequency(partitions: Iterable[np.ndarray]) -> str | None:
    """The frequency most of the given partitions show (None: none of them says)."""
    votes = Counter(freq for ds in partitions if (freq := partition_frequency(ds)))
    return votes.most_common(1)[0][0] if votes else None
