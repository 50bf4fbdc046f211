"""Read and validate a user's table of many time series (CSV or Parquet), with nothing dropped silently.

`read_table` returns a `ValidatedTable`: the accepted partitions (one series each) and a rejection
for every partition that cannot be trained, with its reasons. A table that cannot be used at all
raises a `TableError` subclass whose message says what to fix:

- whole table: unreadable file, no rows, missing columns, rows without a partition key,
  unparseable timestamps, non-numeric targets, a frequency that cannot be inferred;
- per partition (the rest proceed): missing target values, duplicate timestamps, gaps (or
  timestamps off the frequency's grid).

A partition with fewer observations than `min_length` is not rejected: it is accepted and marked
`short_history` (with the reason), and training fits on all of it what its length supports, with no
holdout (short_history.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from .naming import partition_id
from .options import TableOptions, TrainOptions

MAX_EXAMPLES = 5  # values quoted in an error message
NO_SEASON_HORIZON = 10
FREQ_SAMPLE = 50


class TableError(ValueError):
    """The whole table is unusable; `code` is stable for machines, the message is for the user."""

    code = "bad_table"


class UnreadableTable(TableError):
    code = "unreadable"


class EmptyTable(TableError):
    code = "empty"


class MissingColumns(TableError):
    code = "missing_columns"


class MissingPartitionKeys(TableError):
    code = "missing_partition_keys"


class UnparseableDates(TableError):
    code = "unparseable_dates"


class NonNumericTarget(TableError):
    code = "non_numeric_target"


class FrequencyUnknown(TableError):
    code = "frequency_unknown"


@dataclass(frozen=True)
class Problem:
    code: str  # missing_values | duplicate_timestamps | gaps
    message: str


@dataclass(frozen=True)
class PartitionRejection:
    partition_id: str
    keys: dict[str, str]
    problems: tuple[Problem, ...]

    def as_dict(self) -> dict:
        return {"partition_id": self.partition_id, "keys": self.keys,
                "problems": [{"code": p.code, "message": p.message} for p in self.problems]}


@dataclass(frozen=True)
class Series:
    partition_id: str
    keys: dict[str, str]
    ds: np.ndarray  # datetime64[ns], increasing, on the frequency's grid
    y: np.ndarray  # float64, no missing values
    short_history: str = ""  # why it is trained without a holdout (fewer than min_length points); "" if not


@dataclass(frozen=True)
class ValidatedTable:
    partition_columns: tuple[str, ...]
    freq: str
    season_length: int
    horizon: int
    min_length: int
    series: list[Series] = field(default_factory=list)
    rejections: list[PartitionRejection] = field(default_factory=list)


def season_length_for(freq: str) -> int:
    """The usual seasonal period of a pandas frequency: 12 monthly, 4 quarterly, 52 weekly, 7 daily,
    24 hourly, 1 (none) otherwise or where a multiple (e.g. `2MS`) does not divide it."""
    offset = to_offset(freq)
    name = type(offset).__name__
    periods = {"Month": 12, "Quarter": 4, "Week": 52, "Day": 7, "BusinessDay": 5, "Hour": 24, "Minute": 60}
    base = next((value for prefix, value in periods.items() if name.startswith(prefix) or name.endswith(prefix)), 1)
    n = abs(getattr(offset, "n", 1)) or 1
    return base // n if base % n == 0 and base // n > 1 else 1


def _examples(values: pd.Series, rows: pd.Index) -> str:
    shown = ", ".join(f"row {row + 2}: {value!r}" for row, value in zip(rows[:MAX_EXAMPLES], values[:MAX_EXAMPLES],
                                                                       strict=False))
    more = f" (and {len(rows) - MAX_EXAMPLES} more)" if len(rows) > MAX_EXAMPLES else ""
    return shown + more


def load_frame(source: Path | str | IO[bytes], format: str | None = None) -> pd.DataFrame:
    """CSV (every cell read as text, so parsing errors are ours to report) or Parquet."""
    name = str(getattr(source, "name", source))
    kind = (format or Path(name).suffix.lstrip(".")).lower()
    try:
        if kind in ("parquet", "pq"):
            return pd.read_parquet(source)
        if kind in ("csv", "txt"):
            return pd.read_csv(source, dtype=str, skipinitialspace=True)
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UnreadableTable(f"cannot read {Path(name).name} as {kind.upper()}: {error}") from None
    raise UnreadableTable(f"{Path(name).name}: unsupported format {kind!r}; upload a .csv or .parquet table")


def _timestamps(column: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    else:
        text = column.astype("string").str.strip()
        parsed = pd.to_datetime(text, errors="coerce")  # one format, inferred from the first value: fast
        retry = parsed.isna() & text.notna()
        if retry.any():  # a second spelling somewhere: parse just those values one by one
            parsed = parsed.where(~retry, pd.to_datetime(text[retry], errors="coerce", format="mixed"))
    bad = parsed.isna()
    if bad.any():
        raise UnparseableDates(f"column {name!r} has {int(bad.sum())} values that are not dates: "
                               f"{_examples(column[bad], column.index[bad])}; use ISO dates such as 2024-01-31")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[ns]")


def _targets(column: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        raise NonNumericTarget(f"column {name!r} holds true/false values, not numbers")
    if pd.api.types.is_numeric_dtype(column):
        return column.astype("float64")
    text = column.astype("string").str.strip()
    parsed = pd.to_numeric(text, errors="coerce")
    bad = parsed.isna() & text.notna() & (text != "")
    if bad.any():
        raise NonNumericTarget(f"column {name!r} has {int(bad.sum())} values that are not numbers: "
                               f"{_examples(column[bad], column.index[bad])}")
    return parsed.astype("float64")


def _infer_freq(ds: np.ndarray, bounds: np.ndarray) -> str:
    """The most common frequency pandas infers, over up to FREQ_SAMPLE partitions spread over the table."""
    picks = np.unique(np.linspace(0, len(bounds) - 2, num=min(FREQ_SAMPLE, len(bounds) - 1)).astype(int))
    votes = Counter()
    for i in picks:
        index = pd.DatetimeIndex(ds[bounds[i]:bounds[i + 1]])
        if len(index) >= 3 and index.is_unique and (freq := pd.infer_freq(index)):
            votes[freq] += 1
    if not votes:
        raise FrequencyUnknown("cannot infer the series' frequency (no partition has 3 or more evenly spaced "
                               "timestamps); set the `freq` option, e.g. MS for monthly or D for daily")
    return votes.most_common(1)[0][0]


def _per_partition(counts: np.ndarray, codes: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """How many flagged rows (or row pairs) each partition has."""
    return np.bincount(codes[flags], minlength=len(counts))


def _problems(ds: np.ndarray, y: np.ndarray, bounds: np.ndarray, freq: str) -> list[list[Problem]]:
    """Every partition's problems, vectorized over the whole sorted table (a loop of pandas calls per
    partition took 6 ms each: a minute for 10,000 partitions)."""
    counts = np.diff(bounds)
    codes = np.repeat(np.arange(len(counts)), counts)
    offset = to_offset(freq)
    index = pd.DatetimeIndex(ds)
    same = codes[1:] == codes[:-1]
    expected = (index[:-1] + offset).to_numpy()
    duplicate = same & (ds[1:] == ds[:-1])
    close = same & ~duplicate & (ds[1:] < expected)
    gap = same & (ds[1:] > expected)
    off_grid = (index + offset - offset).to_numpy() != ds  # e.g. the 4th of a month for MS
    off_grid[1:] |= close  # closer to the previous timestamp than one period
    tallies = {
        "missing": _per_partition(counts, codes, np.isnan(y)),
        "duplicate": _per_partition(counts, codes[1:], duplicate),
        "off_grid": _per_partition(counts, codes, off_grid),
        "gap": _per_partition(counts, codes[1:], gap),
    }
    first = {name: _first_rows(codes[1:] if name != "off_grid" else codes, flags, len(counts))
             for name, flags in (("duplicate", duplicate), ("gap", gap), ("off_grid", off_grid))}
    out = []
    for i in range(len(counts)):
        problems = []
        if tallies["missing"][i]:
            problems.append(Problem("missing_values", f"{tallies['missing'][i]} target values are empty"))
        if tallies["duplicate"][i]:
            when = pd.Timestamp(ds[first["duplicate"][i] + 1]).isoformat()
            problems.append(Problem("duplicate_timestamps",
                                    f"{tallies['duplicate'][i]} rows repeat a timestamp, first {when}"))
        elif tallies["off_grid"][i]:
            when = pd.Timestamp(ds[first["off_grid"][i]]).isoformat()
            problems.append(Problem("gaps", f"{tallies['off_grid'][i]} timestamps are not on the {freq} grid, "
                                    f"first {when}"))
        elif tallies["gap"][i]:
            after = pd.Timestamp(ds[first["gap"][i]]).isoformat()
            problems.append(Problem("gaps",
                                    f"{tallies['gap'][i]} gap(s) in the {freq} series, the first after {after}"))
        out.append(problems)
    return out


def short_history_reason(n: int, min_length: int, horizon: int, windows: int) -> str:
    """Why a partition of `n` points is fitted without a holdout, or "" when it has enough for one."""
    holdout = horizon * windows
    if n >= min_length and n >= holdout + 2:
        return ""
    needed = max(min_length, holdout + 2)
    return (f"{n} observations, fewer than min_length {needed} (an evaluation holdout of {holdout} and the "
            "history before it): fitted on all of them, with no holdout")


def _first_rows(codes: np.ndarray, flags: np.ndarray, partitions: int) -> np.ndarray:
    """Position (in `codes`) of each partition's first flagged entry, -1 where none."""
    first = np.full(partitions, -1)
    positions = np.flatnonzero(flags)[::-1]  # reversed, so the earliest position is assigned last
    first[codes[positions]] = positions
    return first


def read_table(source: Path | str | IO[bytes], options: TableOptions | None = None,
               train: TrainOptions | None = None, format: str | None = None) -> ValidatedTable:
    """Validate `source`; raise TableError for whole-table faults, reject partitions one by one."""
    options, train = options or TableOptions(), train or TrainOptions()
    frame = load_frame(source, format)
    if frame.empty:
        raise EmptyTable("the table has no rows")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    wanted = [options.timestamp_column, options.target_column, *(options.partition_columns or ())]
    absent = [name for name in wanted if name not in columns]
    if absent:
        raise MissingColumns(f"missing columns {absent}; the table has {columns}. Name yours with the "
                             "timestamp_column / target_column / partition_columns options")
    keys = options.partition_columns or tuple(c for c in columns if c not in wanted[:2])
    if not keys:
        raise MissingColumns("no partition key column: the table has only the timestamp and target columns; "
                             "add one (e.g. store) or set partition_columns")
    key_frame = frame[list(keys)].astype("string").apply(lambda c: c.str.strip())
    no_key = key_frame.isna().any(axis=1) | (key_frame == "").any(axis=1)
    if no_key.any():
        rows = frame.index[no_key]
        raise MissingPartitionKeys(f"{len(rows)} rows have an empty partition key ({', '.join(keys)}), "
                                   f"first at row {rows[0] + 2}; every row must name its partition")
    ds = _timestamps(frame[options.timestamp_column], options.timestamp_column)
    y = _targets(frame[options.target_column], options.target_column)
    tidy = key_frame.assign(_ds=ds.to_numpy(), _y=y.to_numpy()).sort_values([*keys, "_ds"], kind="stable")
    starts = np.flatnonzero(~tidy.duplicated(list(keys)).to_numpy())
    bounds = np.append(starts, len(tidy))
    ds_values = tidy["_ds"].to_numpy(dtype="datetime64[ns]")
    y_values = tidy["_y"].to_numpy(dtype="float64")
    freq = options.freq or _infer_freq(ds_values, bounds)
    season = train.season_length or season_length_for(freq)
    horizon = train.horizon or (season if season > 1 else NO_SEASON_HORIZON)
    min_length = options.min_length or horizon * train.windows + max(2 * season, 8)
    key_rows = tidy[list(keys)].iloc[starts].itertuples(index=False, name=None)
    accepted, rejected = [], []
    for i, (values, problems) in enumerate(zip(key_rows, _problems(ds_values, y_values, bounds, freq), strict=True)):
        key_values = dict(zip(keys, (str(v) for v in values), strict=True))
        pid = partition_id(key_values)
        if problems:
            rejected.append(PartitionRejection(pid, key_values, tuple(problems)))
        else:
            accepted.append(Series(pid, key_values, ds_values[bounds[i]:bounds[i + 1]],
                                   y_values[bounds[i]:bounds[i + 1]],
                                   short_history_reason(bounds[i + 1] - bounds[i], min_length, horizon, train.windows)))
    return ValidatedTable(tuple(keys), freq, season, horizon, min_length, accepted, rejected)
