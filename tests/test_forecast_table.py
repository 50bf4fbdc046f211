"""Reading and validating uploaded tables: whole-table errors name the fault; bad partitions are
rejected with their reasons while the rest proceed (nothing dropped silently)."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from forecast_support import STORE_OPTIONS, as_csv, m3_table, prepare_m3

from forecast_job import table as tables
from forecast_job.manifest import Manifest, ManifestError, bucket_file, load_rejections, mltable_spec, read_bucket
from forecast_job.naming import partition_id
from forecast_job.options import OptionsError, TableOptions, TrainOptions, options_from_metadata

FAST = TrainOptions(horizon=18, model_set="fast")


def read(frame: pd.DataFrame, options: TableOptions = STORE_OPTIONS) -> tables.ValidatedTable:
    return tables.read_table(as_csv(frame), options, FAST)


def test_a_clean_table_is_accepted_whole_with_its_frequency_and_defaults():
    validated = read(m3_table(6))
    assert (validated.partition_columns, validated.freq, validated.season_length) == (("store",), "MS", 12)
    assert (validated.horizon, validated.min_length) == (18, 18 + 24)
    assert len(validated.series) == 6 and validated.rejections == []
    first = validated.series[0]
    assert first.keys == {"store": first.keys["store"]} and first.partition_id == partition_id(first.keys)
    assert np.all(np.diff(first.ds) > np.timedelta64(0)) and first.y.dtype == np.float64


def test_parquet_is_read_too_and_the_default_columns_are_documented():
    frame = m3_table(3).rename(columns={"sales": "target"})  # timestamp/target are the default names
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    buffer.seek(0)
    validated = tables.read_table(buffer, format="parquet", train=FAST)
    assert validated.partition_columns == ("store",) and len(validated.series) == 3


@pytest.mark.parametrize(
    ("mutate", "error", "words"),
    [
        (lambda f: f.drop(columns=["sales"]), tables.MissingColumns, "missing columns ['sales']"),
        (lambda f: f.head(0), tables.EmptyTable, "no rows"),
        (lambda f: f.assign(timestamp=f.timestamp.astype(str).where(f.index != 7, "2001-13-45")),
         tables.UnparseableDates, "row 9: '2001-13-45'"),
        (lambda f: f.assign(sales=f.sales.astype(str).where(f.index != 3, "12a")), tables.NonNumericTarget,
         "row 5: '12a'"),
        (lambda f: f.assign(store=f.store.where(f.index != 4, "")), tables.MissingPartitionKeys, "first at row 6"),
        (lambda f: f.assign(timestamp=pd.Timestamp("2000-01-01") + pd.to_timedelta(np.cumsum(
            np.random.default_rng(1).integers(1, 60, len(f))), unit="D")), tables.FrequencyUnknown, "freq"),
    ],
    ids=["missing-column", "empty", "bad-date", "non-numeric", "no-key", "no-frequency"],
)
def test_whole_table_errors_say_what_to_fix(mutate, error, words):
    with pytest.raises(error, match=None) as caught:
        read(mutate(m3_table(4)))
    assert words in str(caught.value) and caught.value.code


def test_a_file_that_is_not_a_table_is_unreadable():
    garbage = io.BytesIO(b"\x00\x01not parquet")
    garbage.name = "sales.parquet"
    with pytest.raises(tables.UnreadableTable, match=r"sales\.parquet"):
        tables.read_table(garbage)
    with pytest.raises(tables.UnreadableTable, match="unsupported format 'xlsx'"):
        tables.read_table(io.BytesIO(b"x"), format="xlsx")


def test_bad_partitions_are_rejected_with_reasons_and_the_rest_proceed():
    frame = m3_table(8)
    stores = list(dict.fromkeys(frame.store))
    rows = {store: frame.index[frame.store == store] for store in stores}
    frame.loc[rows[stores[0]][5], "sales"] = None  # an empty cell
    frame.loc[rows[stores[1]][6], "timestamp"] = frame.loc[rows[stores[1]][5], "timestamp"]  # a repeated month
    frame = frame.drop(index=rows[stores[2]][10:13])  # three months missing
    frame.loc[rows[stores[3]][4], "timestamp"] += pd.Timedelta(days=3)  # off the month-start grid
    frame = frame.drop(index=rows[stores[4]][30:])  # 30 observations, 42 needed: a short history, not a fault
    validated = read(frame)
    reasons = {r.keys["store"]: [p.code for p in r.problems] for r in validated.rejections}
    assert reasons == {stores[0]: ["missing_values"], stores[1]: ["duplicate_timestamps"], stores[2]: ["gaps"],
                       stores[3]: ["gaps"]}
    messages = {r.keys["store"]: r.problems[0].message for r in validated.rejections}
    assert "1 gap(s) in the MS series, the first after" in messages[stores[2]]
    assert "1 timestamps are not on the MS grid, first 1990-05-04T00:00:00" in messages[stores[3]]
    assert sorted(s.keys["store"] for s in validated.series) == sorted(stores[4:])
    short = {s.keys["store"]: s.short_history for s in validated.series if s.short_history}
    assert list(short) == [stores[4]] and short[stores[4]].startswith("30 observations, fewer than min_length 42")


def test_a_short_history_is_marked_at_any_length_down_to_one_observation():
    frame = m3_table(4)
    stores = list(dict.fromkeys(frame.store))
    for store, keep in zip(stores, (1, 2, 41), strict=False):  # the fourth keeps its whole history
        frame = frame.drop(index=frame.index[frame.store == store][keep:])
    validated = read(frame)
    assert not validated.rejections
    marks = {s.keys["store"]: (len(s.y), s.short_history.split(",")[0]) for s in validated.series}
    assert marks == {stores[0]: (1, "1 observations"), stores[1]: (2, "2 observations"),
                     stores[2]: (41, "41 observations"), stores[3]: ((frame.store == stores[3]).sum(), "")}
    # a min_length below what the holdout itself needs still leaves a holdout of horizon + 2
    validated = tables.read_table(as_csv(m3_table(1).head(19)), TableOptions(target_column="sales", min_length=3),
                                  TrainOptions(horizon=18))
    assert validated.series[0].short_history.startswith("19 observations, fewer than min_length 20")


def test_metadata_options_and_their_errors():
    table, train = options_from_metadata({"Partition_Columns": "store, brand", "target_column": "sales",
                                          "horizon": "6", "model_set": "fast", "unrelated": "x"})
    assert table.partition_columns == ("store", "brand") and table.target_column == "sales"
    assert (train.horizon, train.model_set) == (6, "fast")
    with pytest.raises(OptionsError, match="horizon"):
        options_from_metadata({"horizon": "soon"})
    with pytest.raises(OptionsError, match="model_set"):
        options_from_metadata({"model_set": "huge"})


def test_interval_levels_from_metadata_and_their_errors():
    assert options_from_metadata({})[1].levels == (80.0, 95.0)
    assert options_from_metadata({"Levels": " 97.5, 50.5,80 "})[1].levels == (50.5, 80.0, 97.5)
    for value, words in (("50", "50 is outside (50, 99.9)"), ("99.9", "99.9 is outside (50, 99.9)"),
                         ("80,abc", "'abc' is not a number"), ("nan", "'nan' is not a number"),
                         ("60,70,80,90,95,99", "has 6 levels; at most 5"), ("80,80", "80 given more than once"),
                         ("", "`levels` is empty")):
        with pytest.raises(OptionsError, match=re.escape(words)) as raised:
            options_from_metadata({"levels": value})
        assert "`levels`" in str(raised.value)
    with pytest.raises(ValueError, match="levels"):  # the same rules for options built in code
        TrainOptions(levels=(40,))


def test_the_work_folder_holds_bucket_files_of_many_partitions_the_rejections_and_the_manifest(tmp_path):
    frame = m3_table(20)
    frame = frame.drop(index=frame.index[frame.store == frame.store.iloc[0]][30:])  # one partition short
    manifest = prepare_m3(tmp_path, frame=frame)
    assert Manifest.load(tmp_path) == manifest and len(manifest.partitions) == 20
    assert load_rejections(tmp_path) == []
    assert [bool(e.short_history) for e in manifest.partitions].count(True) == 1
    assert manifest.train.levels == (80.0, 95.0)
    buckets = {entry.bucket for entry in manifest.partitions}
    assert manifest.buckets == 8 and len(buckets) <= 8 < len(manifest.partitions)  # many partitions per file
    assert sorted(p.parent.name for p in (tmp_path / "partitions").glob("bucket=*/data.parquet")) == [
        f"bucket={b:04d}" for b in sorted(buckets)]
    entry = manifest.partitions[0]
    data = pd.read_parquet(bucket_file(tmp_path, entry.bucket))
    assert list(data.columns) == ["partition", "ds", "y"]
    assert data.partition.is_monotonic_increasing and data.groupby("partition").ds.is_monotonic_increasing.all()
    ds, y = read_bucket(tmp_path, entry.bucket)[entry.id]
    assert len(y) == entry.observations and entry.last_timestamp == pd.Timestamp(ds[-1]).isoformat()
    assert (tmp_path / "partitions" / "MLTable").read_text().startswith("{") and mltable_spec()["paths"] == [
        {"pattern": "./bucket=*/data.parquet"}]
    (tmp_path / "manifest.json").write_text('{"schema_version": 9}')
    with pytest.raises(ManifestError, match="schema_version 9"):
        Manifest.load(tmp_path)


def _daily(stores: int = 2, days: int = 400, seed: int = 0, drop: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for store in range(stores):
        dates = pd.date_range("2022-01-01", periods=days, freq="D")
        kept = dates[rng.random(days) >= drop] if drop else dates
        rows.append(pd.DataFrame({"store": f"s{store}", "timestamp": kept.strftime("%Y-%m-%d"),
                                  "sales": rng.poisson(20, len(kept)).astype(float)}))
    return pd.concat(rows, ignore_index=True)


def test_an_extra_numeric_column_is_never_silently_a_key():
    """A price column made 2 stores 4 series; now the user is asked which columns are keys."""
    frame = _daily(2, 60).assign(price=lambda f: np.where(f.index % 2, "1.99", "2.49"), brand="a")
    with pytest.raises(tables.AmbiguousKeys, match=r"\['store', 'price', 'brand'\].*\['price'\] hold numbers"):
        tables.read_table(as_csv(frame), TableOptions(target_column="sales"), FAST)
    chosen = tables.read_table(as_csv(frame), TableOptions(target_column="sales", partition_columns=("store",)),
                               TrainOptions(horizon=7, model_set="fast"))
    assert len(chosen.series) == 2 and chosen.ignored_columns == ("price", "brand")
    alone = tables.read_table(as_csv(_daily(2, 60).assign(store=lambda f: f.store.str[1:])),  # numeric ids, alone
                              TableOptions(target_column="sales"), TrainOptions(horizon=7))
    assert alone.partition_columns == ("store",) and len(alone.series) == 2


def test_daily_data_with_missing_days_is_daily_and_fill_gaps_fills_them():
    """2% of days without a row: the frequency is still read (it was FrequencyUnknown), gaps are named
    with the option that fills them, and fill_gaps fills them as zero or interpolates."""
    frame = _daily(3, 400, drop=0.02)
    strict = tables.read_table(as_csv(frame), STORE_OPTIONS)
    assert (strict.freq, strict.season_length, strict.horizon) == ("D", 7, 7)
    assert {r.problems[0].code for r in strict.rejections} == {"gaps"} and not strict.series
    assert "fill_gaps=zero" in strict.rejections[0].problems[0].message
    zero = tables.read_table(as_csv(frame), TableOptions(target_column="sales", fill_gaps="zero"))
    missing_days = 3 * 400 - len(frame)
    assert len(zero.series) == 3 and sum(s.filled for s in zero.series) == missing_days
    assert all(len(s.y) == len(pd.date_range(s.ds[0], s.ds[-1], freq="D")) for s in zero.series)
    assert sum(int((s.y == 0).sum()) for s in zero.series) >= missing_days
    interpolated = tables.read_table(as_csv(frame.assign(sales=frame.sales.where(frame.index != 5))),
                                     TableOptions(target_column="sales", fill_gaps="missing"))
    assert len(interpolated.series) == 3 and not np.isnan(np.concatenate([s.y for s in interpolated.series])).any()


def test_timestamps_keep_their_local_calendar_and_mixed_offsets_are_refused():
    frame = _daily(2, 40)
    paris = frame.assign(timestamp=pd.to_datetime(frame.timestamp).dt.tz_localize("Europe/Paris"))
    buffer = io.BytesIO()
    paris.to_parquet(buffer)  # tz-aware: was shifted to UTC (23:00 the day before) and off the daily grid
    local = tables.read_table(buffer, TableOptions(target_column="sales"), TrainOptions(horizon=7), format="parquet")
    assert local.freq == "D" and len(local.series) == 2 and not local.rejections
    assert str(local.series[0].ds[0].astype("datetime64[D]")) == "2022-01-01"
    offsets = frame.assign(timestamp=frame.timestamp + np.where(frame.index < 30, "T00:00+01:00", "T00:00+02:00"))
    with pytest.raises(tables.MixedOffsets, match=r"mixes UTC offsets \(\+0100, \+0200\)") as caught:
        tables.read_table(as_csv(offsets), STORE_OPTIONS)  # was an unhandled AttributeError
    assert caught.value.code == "mixed_offsets"
    one = frame.assign(timestamp=frame.timestamp + "T00:00+01:00")
    assert len(tables.read_table(as_csv(one), STORE_OPTIONS, TrainOptions(horizon=7)).series) == 2


def test_day_first_dates_are_read_right_or_refused_as_ambiguous():
    """dd/mm/yyyy was read month-first for every day up to the 12th (swapped silently)."""
    frame = _daily(1, 40).assign(timestamp=lambda f: pd.to_datetime(f.timestamp).dt.strftime("%d/%m/%Y"))
    read_back = tables.read_table(as_csv(frame), STORE_OPTIONS, TrainOptions(horizon=7))
    assert str(read_back.series[0].ds[0].astype("datetime64[D]")) == "2022-01-01" and read_back.freq == "D"
    assert str(read_back.series[0].ds[4].astype("datetime64[D]")) == "2022-01-05"  # 05/01/2022: 5 January
    early = frame[pd.to_datetime(frame.timestamp, format="%d/%m/%Y").dt.day <= 12]  # every field <= 12
    with pytest.raises(tables.AmbiguousDates, match="dayfirst=true"):
        tables.read_table(as_csv(early), STORE_OPTIONS)
    told = tables.read_table(as_csv(early), TableOptions(target_column="sales", dayfirst=True, fill_gaps="zero"),
                             TrainOptions(horizon=3))
    assert str(told.series[0].ds[1].astype("datetime64[D]")) == "2022-01-02"
    formatted = tables.read_table(as_csv(early), TableOptions(target_column="sales", date_format="%d/%m/%Y",
                                                              fill_gaps="zero"), TrainOptions(horizon=3))
    assert np.array_equal(formatted.series[0].ds, told.series[0].ds)


def test_weekly_and_business_daily_defaults():
    """121 weeks were refused whole (156 needed); business days got a season of 7."""
    weeks = pd.date_range("2021-01-03", periods=121, freq="W-SUN")
    weekly = pd.DataFrame({"store": "a", "timestamp": weeks.strftime("%Y-%m-%d"), "sales": np.arange(121.0)})
    validated = tables.read_table(as_csv(weekly), STORE_OPTIONS)
    assert (validated.freq, validated.season_length, validated.horizon, validated.min_length) == ("W-SUN", 52, 13, 65)
    assert len(validated.series) == 1
    days = pd.bdate_range("2023-01-02", periods=80)
    business = pd.DataFrame({"store": "a", "timestamp": days.strftime("%Y-%m-%d"), "sales": np.arange(80.0)})
    assert tables.read_table(as_csv(business), STORE_OPTIONS).season_length == 5
    assert tables.season_length_for("B") == 5 and tables.season_length_for("D") == 7


def test_a_table_is_read_in_chunks_with_the_same_result_and_row_numbers(monkeypatch):
    frame = m3_table(6)
    whole = read(frame)
    monkeypatch.setattr(tables, "CHUNK_ROWS", 97)
    chunked = tables.read_table(as_csv(frame), STORE_OPTIONS, FAST)
    assert [(s.partition_id, len(s.y)) for s in chunked.series] == [(s.partition_id, len(s.y)) for s in whole.series]
    bad = frame.assign(sales=frame.sales.astype(str).where(frame.index != 200, "n/a"))  # in the third chunk
    with pytest.raises(tables.NonNumericTarget, match=r"row 202: .n/a."):
        tables.read_table(as_csv(bad), STORE_OPTIONS, FAST)
