"""forecast_job/prepare.py: a table streamed chunk by chunk into bucket files is the same work folder
as the table validated in memory, a fault anywhere in it refuses the whole table with its reason
(exit 3, prepare.json), and memory does not grow with the table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.scale_data import write_tables
from forecast_job import table as table_module
from forecast_job.manifest import PREPARED, Manifest, prepare_work, read_bucket
from forecast_job.options import TableOptions, TrainOptions
from forecast_job.prepare import REJECTED_EXIT, main, prepare
from forecast_job.table import read_table

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = TableOptions(target_column="sales", fill_gaps="zero")
TRAIN = TrainOptions(model_set="fast", horizon=14)


def awkward_table(path: Path) -> Path:
    """40 daily store x product series, shuffled so every partition is spread over many chunks, with
    what prepare must see across chunks: duplicated days in two series, a gap to fill, a series too
    short for a holdout."""
    frame = pd.read_parquet(write_tables(path.parent / "gen", 40, 120, stores=5, csv=False).parquet)
    frame = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    twice = frame[frame["product"].eq("item00000") & frame["store"].isin(["store0001", "store0003"])]
    frame = pd.concat([frame, twice.iloc[[0, -1]]])  # one repeated timestamp in each of two series
    gap = (frame["store"] == "store0002") & (frame["product"] == "item00000") & frame["timestamp"].isin(
        ["2013-02-01", "2013-02-02"])
    frame = frame[~gap]
    short = pd.DataFrame({"store": "store9999", "product": "item99999",
                          "timestamp": pd.date_range("2013-01-01", periods=5, freq="D").strftime("%Y-%m-%d"),
                          "sales": 1.0})
    pd.concat([frame, short]).to_csv(path, index=False)
    return path


def test_the_streamed_work_folder_equals_the_one_validated_in_memory(tmp_path, monkeypatch):
    source = awkward_table(tmp_path / "sales.csv")
    monkeypatch.setattr(table_module, "CHUNK_ROWS", 700)  # ~7 chunks: partitions span chunks
    streamed = prepare(source, tmp_path / "streamed", run_id="r1", dataset="sales", options=OPTIONS, train=TRAIN,
                       buckets=8)
    in_memory = prepare_work(read_table(source, OPTIONS, TRAIN), tmp_path / "memory", run_id="r1", dataset="sales",
                             train=TRAIN, buckets=8)

    assert streamed.model_dump(exclude={"rows"}) == in_memory.model_dump(exclude={"rows"})
    assert streamed.rows == len(pd.read_csv(source)) and Manifest.load(tmp_path / "streamed") == streamed
    assert {entry.filled for entry in streamed.partitions} >= {2}  # the gap, filled with zeros
    rejected = json.loads((tmp_path / "streamed" / "rejections.json").read_text())
    assert sorted(map(json.dumps, rejected)) == sorted(map(json.dumps, json.loads(
        (tmp_path / "memory" / "rejections.json").read_text())))
    assert sorted((r["keys"]["store"], r["keys"]["product"], r["problems"][0]["code"]) for r in rejected) == [
        ("store0001", "item00000", "duplicate_timestamps"), ("store0003", "item00000", "duplicate_timestamps")]
    short = [entry for entry in streamed.partitions if entry.short_history]
    assert [(entry.keys, entry.observations) for entry in short] == [
        ({"store": "store9999", "product": "item99999"}, 5)]
    for bucket in range(8):
        mine, theirs = read_bucket(tmp_path / "streamed", bucket), read_bucket(tmp_path / "memory", bucket)
        assert mine.keys() == theirs.keys()
        for pid in mine:
            np.testing.assert_array_equal(mine[pid][0], theirs[pid][0])
            np.testing.assert_array_equal(mine[pid][1], theirs[pid][1])
    assert not (tmp_path / "streamed" / ".spill").exists()


def test_a_fault_deep_in_the_table_refuses_it_with_the_row_and_exit_3(tmp_path, monkeypatch):
    source = tmp_path / "sales.csv"
    frame = pd.read_parquet(write_tables(tmp_path / "gen", 30, 100, csv=False).parquet)
    frame.loc[2_950, "timestamp"] = "not a date"
    frame.to_csv(source, index=False)
    monkeypatch.setattr(table_module, "CHUNK_ROWS", 500)  # the bad cell is in the sixth chunk
    work = tmp_path / "work"
    code = main(["--table", str(source), "--work", str(work), "--run-id", "r1", "--dataset", "sales",
                 "--options", json.dumps({"table": {"target_column": "sales"}})])
    verdict = json.loads((work / PREPARED).read_text())
    assert code == REJECTED_EXIT and verdict["accepted"] is False, verdict
    assert verdict["code"] == "unparseable_dates" and "not a date" in verdict["reason"], verdict
    assert "row 2952" in verdict["reason"], verdict  # the CSV line: 2,950 + 1 (from 0) + 1 (the header)
    assert not (work / "manifest.json").exists()


def test_an_accepted_table_is_summed_up_in_prepare_json(tmp_path):
    source = write_tables(tmp_path / "gen", 12, 90, csv=True).csv
    work = tmp_path / "work"
    assert main(["--table", str(source), "--work", str(work), "--run-id", "r1", "--dataset", "sales",
                 "--options", json.dumps({"table": {"target_column": "sales"}, "train": {"model_set": "fast"}})]) == 0
    verdict = json.loads((work / PREPARED).read_text())
    assert {key: verdict[key] for key in ("accepted", "partitions", "rejected", "rows", "freq")} == {
        "accepted": True, "partitions": 12, "rejected": 0, "rows": 12 * 90, "freq": "D"}
    assert verdict["partition_columns"] == ["store", "product"] and verdict["season_length"] == 7


PEAK_RSS = """
import resource, sys
from forecast_job import table
table.CHUNK_ROWS, table.CSV_BLOCK = 50_000, 1 << 20  # a chunk: 50,000 rows or 1 MB of text
from forecast_job.prepare import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
sys.exit(code)
"""


def _prepare_peak_mb(source: Path, work: Path) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, "--table", str(source), "--work", str(work),
                           "--run-id", "r1", "--dataset", "sales", "--options",
                           json.dumps({"table": {"target_column": "sales"}})],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_memory_does_not_grow_with_the_table(kind, tmp_path):
    """Peak RSS of prepare on a table 8x as long grows by far less than what the table takes in
    memory (its series as float64 + datetime64 alone: 16 bytes a row, before any text)."""
    small = write_tables(tmp_path / "small", 50, 2_000, csv=kind == "csv")
    large = write_tables(tmp_path / "large", 400, 2_000, csv=kind == "csv")
    peak = {name: _prepare_peak_mb(getattr(tables, kind), tmp_path / f"work-{name}")
            for name, tables in (("small", small), ("large", large))}
    grown_mb = peak["large"] - peak["small"]
    table_mb = large.rows * 16 / 2**20  # 12 MB for 800,000 rows: the floor of an in-memory read
    source_mb = getattr(large, kind).stat().st_size / 2**20
    assert grown_mb < max(table_mb, 0.5 * source_mb), (peak, table_mb, source_mb)
