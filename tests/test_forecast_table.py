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
from forecast_job.manifest import Manifest, ManifestError, load_rejections, mltable_spec, partition_file
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


def test_the_work_folder_holds_one_parquet_per_partition_the_rejections_and_the_manifest(tmp_path):
    frame = m3_table(5)
    frame = frame.drop(index=frame.index[frame.store == frame.store.iloc[0]][30:])  # one partition short
    manifest = prepare_m3(tmp_path, frame=frame)
    assert Manifest.load(tmp_path) == manifest and len(manifest.partitions) == 5
    assert load_rejections(tmp_path) == []
    assert [bool(e.short_history) for e in manifest.partitions].count(True) == 1
    assert manifest.train.levels == (80.0, 95.0)
    entry = manifest.partitions[0]
    data = pd.read_parquet(partition_file(tmp_path, entry.id))
    assert list(data.columns) == ["ds", "y"] and len(data) == entry.observations
    assert entry.last_timestamp == str(data.ds.iloc[-1].isoformat())
    assert (tmp_path / "partitions" / "MLTable").read_text().startswith("{") and mltable_spec()["paths"] == [
        {"pattern": "./partition=*/data.parquet"}]
    (tmp_path / "manifest.json").write_text('{"schema_version": 9}')
    with pytest.raises(ManifestError, match="schema_version 9"):
        Manifest.load(tmp_path)
