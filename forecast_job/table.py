"""Read and validate a user's table of many time series (CSV or Parquet), with nothing dropped silently.

A table is read in chunks of CHUNK_ROWS (memory does not grow with its size: prepare.py streams a
40-million-row table through these same steps into bucket files) and every chunk is normalized
to (partition id, timestamp, target, row); then each partition's rows are checked together.

- whole table (`TableError`, the upload is rejected with the message): unreadable file, no rows,
  missing columns, partition keys that are not clear (an extra numeric column is never taken as a
  key: a price column made 2 stores 4 series), rows without a partition key, unparseable, ambiguous
  (day or month first) or mixed-offset timestamps (timestamps.py), non-numeric targets, a frequency
  that cannot be inferred;
- per partition (the rest proceed): missing target values, duplicate timestamps, gaps (periods
  with no row: reported, or filled with `fill_gaps`), timestamps off the frequency's grid.

A partition with fewer observations than `min_length` is not rejected: it is accepted and marked
`short_history` (with the reason), and training fits on all of it what its length supports, with no
holdout (short_history.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from .frequency import default_horizon, infer_frequency, min_length_for, season_length_for
from .naming import partition_id
from .options import TableOptions, TrainOptions
from .timestamps import DayOrder, TimestampError, examples, parse_timestamps

CHUNK_ROWS = 1 << 20  # rows read at once: ~100 MB of text per chunk whatever the table's size
FREQ_SAMPLE = 50  # partitions the frequency is inferred from, spread over the table
CSV_BLOCK = 16 << 20

Source = Path | str | IO[bytes]


class TableError(ValueError):
    """The whole table is unusable; `code` is stable for machines, the message is for the user."""

    code = "bad_table"


class UnreadableTable(TableError):
    code = "unreadable"


class EmptyTable(TableError):
    code = "empty"


class MissingColumns(TableError):
    code = "missing_columns"


class AmbiguousKeys(TableError):
    code = "ambiguous_keys"


class MissingPartitionKeys(TableError):
    code = "missing_partition_keys"


class UnparseableDates(TableError):
    code = "unparseable_dates"


class AmbiguousDates(TableError):
    code = "ambiguous_dates"


class MixedOffsets(TableError):
    code = "mixed_offsets"


class NonNumericTarget(TableError):
    code = "non_numeric_target"


class FrequencyUnknown(TableError):
    code = "frequency_unknown"


TIMESTAMP_ERRORS = {cls.code: cls for cls in (UnparseableDates, AmbiguousDates, MixedOffsets)}


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
    filled: int = 0  # periods (or empty cells) filled by `fill_gaps`
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
    ignored_columns: tuple[str, ...] = ()


# --- which column is what --------------------------------------------------------------------

@dataclass(frozen=True)
class Columns:
    timestamp: str
    target: str
    keys: tuple[str, ...]
    ignored: tuple[str, ...] = ()  # present, but neither a key nor the timestamp or target


def choose_columns(names: list[str], numeric: Collection[str], options: TableOptions) -> Columns:
    """The timestamp, target and key columns. Without `partition_columns` every other column is a
    key, unless that is unclear: several others of which some hold numbers (a price, a promotion
    flag) are not taken as keys but refused, naming them, so the user says which are keys."""
    wanted = [options.timestamp_column, options.target_column, *(options.partition_columns or ())]
    absent = [name for name in wanted if name not in names]
    if absent:
        raise MissingColumns(f"missing columns {absent}; the table has {names}. Name yours with the "
                             "timestamp_column / target_column / partition_columns options")
    others = [name for name in names if name not in wanted[:2]]
    if options.partition_columns:
        keys = options.partition_columns
        return Columns(wanted[0], wanted[1], keys, tuple(name for name in others if name not in keys))
    if not others:
        raise MissingColumns("no partition key column: the table has only the timestamp and target columns; "
                             "add one (e.g. store) or set partition_columns")
    numbers = [name for name in others if name in numeric]
    if len(others) > 1 and numbers:
        raise AmbiguousKeys(f"the table has columns {others} besides {wanted[0]!r} and {wanted[1]!r}, and "
                            f"{numbers} hold numbers, so it is not clear which columns name a partition: set "
                            "partition_columns (e.g. store,brand); the others are ignored")
    return Columns(wanted[0], wanted[1], tuple(others))


# --- reading, chunk by chunk -----------------------------------------------------------------

class TableChunks:
    """A CSV or Parquet source read as frames of at most CHUNK_ROWS rows, as often as needed (a path
    is opened again, a file object rewound). CSV cells are read as text, so parsing errors are ours."""

    def __init__(self, source: Source, format: str | None = None, rows: int | None = None) -> None:
        self.source, self.rows = source, rows or CHUNK_ROWS
        name = str(getattr(source, "name", source))
        self.label = Path(name).name
        self.kind = (format or Path(name).suffix.lstrip(".")).lower()
        if self.kind in ("pq",):
            self.kind = "parquet"
        if self.kind == "txt":
            self.kind = "csv"
        if self.kind not in ("csv", "parquet"):
            raise UnreadableTable(f"{self.label}: unsupported format {self.kind!r}; upload a .csv or .parquet table")
        self.names = self._names()

    def _open(self) -> IO[bytes] | contextlib.nullcontext:
        """A path is opened (and closed by the caller's `with`); a caller's file object is rewound
        and left open."""
        if isinstance(self.source, str | Path):
            return open(self.source, "rb")
        self.source.seek(0)
        return contextlib.nullcontext(self.source)

    def _fail(self, error: Exception) -> UnreadableTable:
        return UnreadableTable(f"cannot read {self.label} as {self.kind.upper()}: {error}")

    def _names(self) -> list[str]:
        import pyarrow.parquet as pq

        try:
            with self._open() as handle:
                if self.kind == "parquet":
                    return [str(name) for name in pq.ParquetFile(handle).schema_arrow.names]
                header = pd.read_csv(handle, dtype=str, nrows=0, skipinitialspace=True)
                return [str(name).strip() for name in header.columns]
        except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise self._fail(error) from None

    def __iter__(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """(index of the chunk's first row in the table, the chunk)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        first = 0
        try:
            with self._open() as handle:
                if self.kind == "parquet":
                    batches = pq.ParquetFile(handle).iter_batches(batch_size=self.rows)
                else:
                    batches = pacsv.open_csv(handle, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK,
                                                                                    skip_rows=1,
                                                                                    column_names=self.names),
                                             convert_options=pacsv.ConvertOptions(
                                                 column_types=dict.fromkeys(self.names, pa.string())))
                for batch in batches:
                    frame = batch.to_pandas()
                    frame.columns = self.names
                    for start in range(0, len(frame), self.rows):
                        part = frame.iloc[start:start + self.rows].reset_index(drop=True)
                        yield first, part
                        first += len(part)
        except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as error:
            raise self._fail(error) from None


def numeric_columns(first: pd.DataFrame) -> set[str]:
    """Columns holding numbers: typed so (Parquet), or every non-empty cell a number (CSV text)."""
    found = set()
    for name in first.columns:
        column = first[name]
        if pd.api.types.is_bool_dtype(column):
            continue
        if pd.api.types.is_numeric_dtype(column):
            found.add(name)
            continue
        text = column.astype("string").str.strip()
        filled = text.notna() & (text != "")
        if filled.any() and pd.to_numeric(text[filled], errors="coerce").notna().all():
            found.add(name)
    return found


@dataclass
class Rows:
    """Normalized rows: each row's partition id, timestamp, target and place in the table."""

    pid: np.ndarray
    ds: np.ndarray
    y: np.ndarray
    row: np.ndarray

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        if not parts:
            return cls(np.empty(0, object), np.empty(0, "datetime64[ns]"), np.empty(0), np.empty(0, np.int64))
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("pid", "ds", "y", "row")))


class Normalizer:
    """Chunk -> Rows, raising TableError for whole-table faults with the table's row number. Keeps
    the key values of every partition it meets (`keys`)."""

    def __init__(self, columns: Columns, options: TableOptions, dayfirst: bool | None) -> None:
        self.columns, self.options, self.dayfirst = columns, options, dayfirst
        self.keys: dict[str, dict[str, str]] = {}

    def __call__(self, first_row: int, frame: pd.DataFrame) -> Rows:
        keys = list(self.columns.keys)
        key_frame = frame[keys].astype("string").apply(lambda column: column.str.strip())
        no_key = (key_frame.isna() | (key_frame == "")).any(axis=1).to_numpy()
        if no_key.any():
            rows = np.flatnonzero(no_key) + first_row
            raise MissingPartitionKeys(f"{len(rows)} rows have an empty partition key ({', '.join(keys)}), "
                                       f"first at row {rows[0] + 2}; every row must name its partition")
        try:
            ds = parse_timestamps(frame[self.columns.timestamp], self.columns.timestamp, self.options, self.dayfirst,
                                  first_row)
        except TimestampError as error:
            raise TIMESTAMP_ERRORS[error.code](str(error)) from None
        y = _targets(frame[self.columns.target], self.columns.target, first_row)
        codes, uniques = pd.MultiIndex.from_frame(key_frame).factorize()
        pids = np.empty(len(uniques), dtype=object)
        for index, values in enumerate(uniques):
            key_values = dict(zip(keys, (str(v) for v in values), strict=True))
            pids[index] = pid = partition_id(key_values)
            self.keys.setdefault(pid, key_values)
        return Rows(pids[codes], ds, y, np.arange(first_row, first_row + len(frame), dtype=np.int64))


def _targets(column: pd.Series, name: str, first_row: int) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column):
        raise NonNumericTarget(f"column {name!r} holds true/false values, not numbers")
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype="float64")
    text = column.astype("string").str.strip()
    parsed = pd.to_numeric(text, errors="coerce")
    bad = (parsed.isna() & text.notna() & (text != "")).to_numpy()
    if bad.any():
        raise NonNumericTarget(f"column {name!r} has {int(bad.sum())} values that are not numbers: "
                               f"{examples(column[bad], np.flatnonzero(bad) + first_row)}")
    return parsed.to_numpy(dtype="float64", na_value=np.nan)


def open_table(source: Source, options: TableOptions, format: str | None = None,
               rows: int | None = None) -> tuple[TableChunks, Columns, Normalizer]:
    """The chunks, the columns chosen from the first one, and a normalizer whose day order is
    settled over the whole timestamp column when it holds day/month dates (one extra pass)."""
    chunks = TableChunks(source, format, rows)
    first = next(iter(chunks), None)
    if first is None or first[1].empty:
        raise EmptyTable("the table has no rows")
    columns = choose_columns(chunks.names, numeric_columns(first[1]), options)
    order = DayOrder()
    order.see(first[1][columns.timestamp].astype("string").str.strip())
    if order.slashed and not options.date_format:
        for _, frame in chunks:
            order.see(frame[columns.timestamp].astype("string").str.strip())
    try:
        dayfirst = order.dayfirst(columns.timestamp, options)
    except TimestampError as error:
        raise TIMESTAMP_ERRORS[error.code](str(error)) from None
    return chunks, columns, Normalizer(columns, options, dayfirst)


# --- partitions ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """What the partitions are checked against: frequency, season, horizon, minimum length."""

    freq: str
    season_length: int
    horizon: int
    min_length: int
    fill_gaps: str = "none"

    @classmethod
    def for_table(cls, freq: str, options: TableOptions, train: TrainOptions) -> Plan:
        try:
            to_offset(freq)
        except ValueError:
            raise FrequencyUnknown(f"freq {freq!r} is not a pandas frequency; use e.g. MS (monthly), W-SUN, D, "
                                   "B, h") from None
        season = train.season_length or season_length_for(freq)
        horizon = train.horizon or default_horizon(freq, season)
        return cls(freq, season, horizon, options.min_length or min_length_for(horizon, season), options.fill_gaps)


def sort_rows(rows: Rows) -> tuple[Rows, np.ndarray]:
    """Rows sorted by partition then timestamp (stable: equal timestamps keep the table's order),
    and the partition bounds (start of each, then the end)."""
    order = np.lexsort((rows.ds, rows.pid.astype(str)))
    rows = Rows(rows.pid[order], rows.ds[order], rows.y[order], rows.row[order])
    starts = np.flatnonzero(np.r_[True, rows.pid[1:] != rows.pid[:-1]]) if len(rows.pid) else np.empty(0, int)
    return rows, np.append(starts, len(rows.pid))


def frequency_of(rows: Rows, bounds: np.ndarray) -> str:
    picks = np.unique(np.linspace(0, len(bounds) - 2, num=min(FREQ_SAMPLE, len(bounds) - 1)).astype(int))
    freq = infer_frequency(np.unique(rows.ds[bounds[i]:bounds[i + 1]]) for i in picks)
    if freq is None:
        raise FrequencyUnknown("cannot infer the series' frequency (no partition has 3 or more timestamps at a "
                               "steady step); set the `freq` option, e.g. MS for monthly or D for daily")
    return freq


def check_partitions(rows: Rows, bounds: np.ndarray, keys: dict[str, dict[str, str]],
                     plan: Plan) -> tuple[list[Series], list[PartitionRejection]]:
    """Every partition of sorted `rows`, accepted (gaps filled where `fill_gaps` allows; marked
    `short_history` below `min_length`) or rejected with its problems. Vectorized over all rows: a
    loop of pandas calls per partition took 6 ms each, a minute for 10,000 partitions."""
    flags = _flags(rows.ds, rows.y, bounds, plan.freq)
    accepted, rejected = [], []
    for i in range(len(bounds) - 1):
        pid = rows.pid[bounds[i]]
        ds, y = rows.ds[bounds[i]:bounds[i + 1]], rows.y[bounds[i]:bounds[i + 1]]
        problems, filled = _problems_of(i, flags, ds, plan)
        if problems:
            rejected.append(PartitionRejection(pid, keys[pid], tuple(problems)))
            continue
        if filled:
            ds, y = _filled(ds, y, plan)
        accepted.append(Series(pid, keys[pid], ds, y, filled,
                               short_history_reason(len(y), plan.min_length, plan.horizon)))
    return accepted, rejected


def short_history_reason(n: int, min_length: int, horizon: int) -> str:
    """Why a partition of `n` points is fitted without a holdout, or "" when it has enough for one."""
    holdout = horizon
    if n >= min_length and n >= holdout + 2:
        return ""
    needed = max(min_length, holdout + 2)
    return (f"{n} observations, fewer than min_length {needed} (an evaluation holdout of {holdout} and the "
            "history before it): fitted on all of them, with no holdout")


def _flags(ds: np.ndarray, y: np.ndarray, bounds: np.ndarray, freq: str) -> dict[str, np.ndarray]:
    """Per partition: how many missing values, duplicates, off-grid timestamps and gaps, and where
    the first of each is."""
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
    flags = {"missing": np.bincount(codes[np.isnan(y)], minlength=len(counts)),
             "duplicate": np.bincount(codes[1:][duplicate], minlength=len(counts)),
             "off_grid": np.bincount(codes[off_grid], minlength=len(counts)),
             "gap": np.bincount(codes[1:][gap], minlength=len(counts))}
    starts = bounds[:-1]
    for name, marks, base in (("duplicate", duplicate, 1), ("off_grid", off_grid, 0), ("gap", gap, 0)):
        first = np.full(len(counts), -1)
        positions = np.flatnonzero(marks)[::-1]  # reversed, so the earliest position is assigned last
        owners = codes[1:][positions] if name != "off_grid" else codes[positions]
        first[owners] = positions + base - starts[owners]
        flags[f"first_{name}"] = first
    return flags


def _problems_of(i: int, flags: dict[str, np.ndarray], ds: np.ndarray, plan: Plan) -> tuple[list[Problem], int]:
    """Partition i's problems, and how many periods or cells `fill_gaps` fills where nothing else is wrong."""
    problems, freq, fill = [], plan.freq, plan.fill_gaps
    missing, gaps = int(flags["missing"][i]), int(flags["gap"][i])
    if flags["duplicate"][i]:
        when = pd.Timestamp(ds[flags["first_duplicate"][i]]).isoformat()
        problems.append(Problem("duplicate_timestamps", f"{flags['duplicate'][i]} rows repeat a timestamp, "
                                f"first {when}"))
    elif flags["off_grid"][i]:
        when = pd.Timestamp(ds[flags["first_off_grid"][i]]).isoformat()
        problems.append(Problem("gaps", f"{flags['off_grid'][i]} timestamps are not on the {freq} grid, first {when}"))
    elif gaps and fill == "none":
        after = pd.Timestamp(ds[flags["first_gap"][i]]).isoformat()
        problems.append(Problem("gaps", f"{gaps} gap(s) in the {freq} series, the first after {after}; set "
                                "fill_gaps=zero if a period without a row means nothing happened (no sales), or "
                                "fill_gaps=missing to interpolate it"))
    if missing and fill == "none":
        problems.append(Problem("missing_values", f"{missing} target values are empty; set fill_gaps=zero or "
                                "fill_gaps=missing to fill them"))
    if problems:
        return problems, 0
    absent = 0
    if gaps:
        absent = len(pd.date_range(ds[0], ds[-1], freq=freq)) - len(ds)
    return [], absent + missing


def _filled(ds: np.ndarray, y: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """On the full grid from the first to the last timestamp: absent periods and empty cells as 0
    (`zero`) or interpolated linearly (`missing`)."""
    grid = pd.date_range(ds[0], ds[-1], freq=plan.freq)
    series = pd.Series(y, index=pd.DatetimeIndex(ds)).reindex(grid)
    series = series.fillna(0.0) if plan.fill_gaps == "zero" else series.interpolate(limit_direction="both")
    return grid.to_numpy(dtype="datetime64[ns]"), series.to_numpy(dtype="float64")


def read_table(source: Source, options: TableOptions | None = None, train: TrainOptions | None = None,
               format: str | None = None) -> ValidatedTable:
    """The whole table in memory, validated: for tables that fit (tests, benchmarks, small uploads);
    prepare.py streams big ones through the same steps into bucket files."""
    options, train = options or TableOptions(), train or TrainOptions()
    chunks, columns, normalize = open_table(source, options, format)
    rows, bounds = sort_rows(Rows.concat([normalize(first, frame) for first, frame in chunks]))
    plan = Plan.for_table(options.freq or frequency_of(rows, bounds), options, train)
    accepted, rejected = check_partitions(rows, bounds, normalize.keys, plan)
    return ValidatedTable(columns.keys, plan.freq, plan.season_length, plan.horizon, plan.min_length, accepted,
                          rejected, columns.ignored)
