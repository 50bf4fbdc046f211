"""Timestamps as the user wrote them, kept in their local calendar, or a refusal that says why.

- A time zone or UTC offset is dropped, not converted: a daily sales table written in Paris time
  (tz-aware Parquet, or `2024-03-01T00:00+01:00`) stays on its own days; converting to UTC moved
  every row to 23:00 the day before and off the daily grid.
- Offsets that differ within the table (`+01:00` and `+02:00`: a DST change, or two sources mixed)
  are refused: which local calendar is meant cannot be told, and guessing shifts half the rows.
- Day-first and month-first dates (`03/04/2021`) are refused as ambiguous unless some value settles
  it (a first field above 12 is a day) or the `date_format` / `dayfirst` option says; pandas guesses
  from the first value and silently swapped day and month for every date up to the 12th.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .options import TableOptions

# an offset after a time of day (a date's own "-31" is not one)
TIME_AND_OFFSET = re.compile(r"(?P<time>[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?P<offset>Z|[+-]\d{2}(?::?\d{2})?)$")
SLASHED = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})(?:\b|$)")
MAX_EXAMPLES = 5


class TimestampError(ValueError):
    """A fault of the timestamp column; `code` is the TableError code table.py raises it as."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def examples(values: pd.Series, rows: np.ndarray) -> str:
    """`row N: 'value'` for the first few, N as the CSV line (the header is line 1)."""
    shown = ", ".join(f"row {row + 2}: {value!r}" for row, value in zip(rows[:MAX_EXAMPLES], values[:MAX_EXAMPLES],
                                                                       strict=False))
    more = f" (and {len(rows) - MAX_EXAMPLES} more)" if len(rows) > MAX_EXAMPLES else ""
    return shown + more


@dataclass
class DayOrder:
    """Evidence, over every chunk of a table, for day-first or month-first dates like 03/04/2021."""

    slashed: int = 0
    values: int = 0  # every non-empty value seen: slashed dates matter only where all of them are
    example: str | None = None
    day_first_seen: str | None = None  # a value whose first field cannot be a month
    month_first_seen: str | None = None  # a value whose second field cannot be a month

    def see(self, text: pd.Series) -> None:
        present = text.dropna()
        self.values += int((present != "").sum())
        parts = present.str.extract(SLASHED).dropna()
        if parts.empty:
            return
        self.slashed += len(parts)
        self.example = self.example or str(text.loc[parts.index[0]])
        first, second = parts[0].astype(int), parts[1].astype(int)
        dates = (first <= 31) & (second <= 31) & ((first <= 12) | (second <= 12))  # 31/31/2001 is no date
        first, second = first[dates], second[dates]
        if self.day_first_seen is None and (first > 12).any():
            self.day_first_seen = str(text.loc[first[first > 12].index[0]])
        if self.month_first_seen is None and (second > 12).any():
            self.month_first_seen = str(text.loc[second[second > 12].index[0]])

    def dayfirst(self, name: str, options: TableOptions) -> bool | None:
        """True or False for slashed dates, None where there are none (or where other spellings are
        mixed in: the parser then reads each value and names the ones it cannot); raises when they
        cannot be read."""
        if options.date_format or not self.slashed or self.slashed < self.values:
            return None
        if self.day_first_seen and self.month_first_seen:
            raise TimestampError("unparseable_dates", f"column {name!r} mixes day-first ({self.day_first_seen!r}) and "
                                 f"month-first ({self.month_first_seen!r}) dates; write them one way (ISO: 2021-04-03)")
        settled = True if self.day_first_seen else False if self.month_first_seen else None
        if options.dayfirst is not None:
            if settled is not None and settled != options.dayfirst:
                seen = self.day_first_seen or self.month_first_seen
                order = "day" if options.dayfirst else "month"
                raise TimestampError("unparseable_dates", f"column {name!r} has {seen!r}, which is not "
                                     f"{order}-first as dayfirst={options.dayfirst} says")
            return options.dayfirst
        if settled is None:
            raise TimestampError("ambiguous_dates", f"column {name!r} has dates like {self.example!r} where day and "
                                 "month cannot be told apart (every first and second field is 12 or less); set "
                                 "dayfirst=true (03/04/2021 = 3 April) or false, or date_format (e.g. %d/%m/%Y)")
        return settled


def parse_timestamps(column: pd.Series, name: str, options: TableOptions, dayfirst: bool | None,
                     first_row: int = 0) -> np.ndarray:
    """datetime64[ns] local wall times of `column` (text or datetimes); row numbers in errors count
    from `first_row` (the chunk's place in the table)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        if getattr(column.dt, "tz", None) is not None:
            column = column.dt.tz_localize(None)  # the local wall time, as written
        return column.to_numpy(dtype="datetime64[ns]")
    text = column.astype("string").str.strip()
    offsets = text.str.extract(TIME_AND_OFFSET, expand=True)["offset"]
    if offsets.notna().any():
        _check_one_offset(text, offsets, name, first_row)
        text = text.str.replace(TIME_AND_OFFSET, r"\g<time>", regex=True)  # one offset for all: the local time
    if options.date_format:
        parsed = pd.to_datetime(text, format=options.date_format, errors="coerce")
    elif dayfirst is not None:
        parsed = pd.to_datetime(text, dayfirst=dayfirst, errors="coerce", format="mixed")
    else:
        parsed = pd.to_datetime(text, errors="coerce")  # one format, inferred from the first value: fast
        retry = parsed.isna() & text.notna()
        if retry.any():  # a second spelling somewhere: parse just those values one by one
            parsed = parsed.where(~retry, pd.to_datetime(text[retry], errors="coerce", format="mixed"))
    bad = parsed.isna().to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad) + first_row
        hint = f"the date_format {options.date_format!r}" if options.date_format else "ISO dates such as 2024-01-31"
        raise TimestampError("unparseable_dates", f"column {name!r} has {int(bad.sum())} values that are not dates: "
                             f"{examples(column[bad], rows)}; use {hint}")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]")


def _check_one_offset(text: pd.Series, offsets: pd.Series, name: str, first_row: int) -> None:
    normalized = offsets.str.replace(":", "", regex=False).replace({"Z": "+0000"})
    normalized = normalized.where(normalized.str.len() != 3, normalized + "00")  # +01 -> +0100
    seen = normalized.dropna().unique()
    missing = offsets.isna() & text.notna()
    if len(seen) > 1 or missing.any():
        rows = np.flatnonzero((normalized != normalized.dropna().iloc[0]).fillna(True).to_numpy()) + first_row
        kinds = ", ".join(sorted(seen)) + (" and none" if missing.any() else "")
        raise TimestampError("mixed_offsets", f"column {name!r} mixes UTC offsets ({kinds}), first other at "
                             f"row {rows[0] + 2}; give local times without an offset, or one offset for the "
                             "whole table (its calendar is the one the forecasts use)")
