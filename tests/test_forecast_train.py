"""Per-partition training: the local process pool, the Azure ML run() shape, resume and failures."""

from __future__ import annotations

import json
import pickle
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from forecast_support import prepare_m3

from forecast_job import train
from forecast_job.fit import train_series
from forecast_job.manifest import partition_file
from forecast_job.metrics import mase, smape, wape
from tools.competition_series import monthly


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mm")
    manifest = prepare_m3(root / "work")
    assert train.run_local(root / "work", root / "out", workers=2) == []
    return manifest, root / "work", root / "out"


def test_every_partition_gets_a_model_a_baseline_and_a_result(trained_run):
    manifest, _, out = trained_run
    records = train.read_results(out)
    assert sorted(r["partition_id"] for r in records) == sorted(e.id for e in manifest.partitions)
    record = records[0]
    assert record["status"] == "trained" and record["model_type"] in ("Combination", "Theta", "DynamicOptimizedTheta")
    assert set(record["candidates"]) == {"SeasonalNaive", "Theta", "DynamicOptimizedTheta", "Combination"}
    assert record["metrics"] == record["candidates"][record["model_type"]]
    assert record["baseline_metrics"] == record["candidates"]["SeasonalNaive"]
    assert {"mase", "smape", "wape", "accuracy", "relative_mae"} <= set(record["metrics"])
    model = pickle.loads((out / record["partition_id"] / "model.pkl").read_bytes())
    forecast = model.predict(h=18)["mean"]
    assert forecast.shape == (18,) and np.all(np.isfinite(forecast))
    assert not list(out.rglob("*.partial"))
    # one window of standardized holdout errors (|y - f| / the model's own sigma) per step, for the intervals
    scores = record["interval_scores"]
    assert set(scores) == {"model", "baseline"} and [len(w) for w in scores["model"]] == [18]
    assert all(score >= 0 for score in scores["model"][0] + scores["baseline"][0])
    assert model.calibration is None and model.floor == 0.0  # M3 sales are positive; publish calibrates


def test_a_resubmitted_run_trains_only_partitions_without_a_result(trained_run, caplog):
    manifest, work, out = trained_run
    stamps = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}
    caplog.set_level("INFO", logger="forecast_job")
    assert train.run_local(work, out, workers=1) == []
    assert "20 already trained, 0 to train" in caplog.text
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()} == stamps
    redo = manifest.partitions[3].id
    (out / redo / "result.json").unlink()
    caplog.clear()
    assert train.run_local(work, out, workers=1) == []
    assert "19 already trained, 1 to train" in caplog.text
    changed = {path.parent.name for path in out.rglob("*") if path.is_file() and stamps.get(path) !=
               path.stat().st_mtime_ns}
    assert changed == {redo}


def test_a_partition_that_cannot_be_trained_is_recorded_failed_and_retried_next_time(tmp_path):
    manifest = prepare_m3(tmp_path / "work", limit=2)
    hard = manifest.model_copy(update={"train": manifest.train.model_copy(update={"windows": 10})})
    entry = hard.partitions[0]
    y = pd.read_parquet(partition_file(tmp_path / "work", entry.id)).y.to_numpy()
    assert not train.train_with_retries(hard, entry, y, tmp_path / "out", retries=1)
    record = json.loads(train.result_path(tmp_path / "out", entry.id).read_text())
    assert record["status"] == "failed" and "too short for 10 windows" in record["error"]
    assert not train.is_trained(tmp_path / "out", entry.id)
    assert train.run_local(tmp_path / "work", tmp_path / "out", workers=1, only=[entry.id]) == []
    assert train.is_trained(tmp_path / "out", entry.id)


def test_the_azure_ml_entry_trains_the_partition_it_is_handed(tmp_path, monkeypatch):
    manifest = prepare_m3(tmp_path / "work", limit=2)
    entry = manifest.partitions[1]
    monkeypatch.setattr(sys, "argv", ["prs", "--work", str(tmp_path / "work"), "--output", str(tmp_path / "out"),
                                      "--unrelated", "x"])
    from forecast_job import prs_entry

    prs_entry.init()
    rows = pd.read_parquet(partition_file(tmp_path / "work", entry.id)).sample(frac=1, random_state=0)  # any order
    context = SimpleNamespace(partition_key_value={"partition": entry.id})
    assert prs_entry.run(rows.assign(partition=entry.id), context) == [entry.id]
    assert train.is_trained(tmp_path / "out", entry.id)
    stamp = train.result_path(tmp_path / "out", entry.id).stat().st_mtime_ns
    assert prs_entry.run(rows, context) == [entry.id]  # a retried mini-batch: already done
    assert train.result_path(tmp_path / "out", entry.id).stat().st_mtime_ns == stamp


def test_the_cli_refuses_a_folder_without_a_manifest(tmp_path):
    assert train.main(["--work", str(tmp_path), "--output", str(tmp_path / "out")]) == 2


def test_the_default_set_beats_seasonal_naive_on_the_competition_test_period():
    data = monthly("m3", limit=12)
    groups = data.table.groupby("series", sort=False)
    model_errors, naive_errors = [], []
    for name, group in groups:
        trained = train_series(group.target.to_numpy(), horizon=18, season_length=12)
        model_errors.append(smape(data.test[name], trained.model.predict(h=18)["mean"]))
        naive_errors.append(smape(data.test[name], trained.baseline.predict(h=18)["mean"]))
    assert np.mean(model_errors) < np.mean(naive_errors)


def test_the_combination_serves_unless_a_single_model_beats_it_by_the_margin():
    y = monthly("m3", limit=1).table.target.to_numpy()
    always = train_series(y, horizon=18, season_length=12, selection_margin=1.0)
    assert always.model_type == "Combination" and repr(always.model.model).startswith("Combination(AutoETS")
    assert always.model.predict(h=18)["mean"].shape == (18,)
    from statsforecast.models import AutoETS  # the refit keeps the ETS form chosen on the holdout part

    holdout_form = AutoETS(season_length=12).fit(y=y[:-18]).model_["components"]
    assert always.model.model.members["AutoETS"].model_["components"] == holdout_form
    plain = train_series(y, horizon=18, season_length=12, selection_margin=0.0)
    singles = ("AutoETS", "DynamicOptimizedTheta", "Theta", "Combination")
    assert plain.model_type == min(singles, key=lambda name: plain.candidates[name]["mase"])
    assert "SeasonalNaive" in plain.candidates and plain.model_type != "SeasonalNaive"


def test_the_full_set_adds_autoces_and_autoarima():
    y = monthly("m3", limit=1).table.target.to_numpy()
    full = train_series(y, horizon=18, season_length=12, model_set="full", selection_margin=0.0)
    assert set(full.candidates) == {"SeasonalNaive", "AutoETS", "DynamicOptimizedTheta", "Theta", "AutoCES",
                                    "AutoARIMA", "Combination"} and not full.errors


def test_the_metrics_match_their_definitions():
    y, f = np.array([10.0, 20.0, 0.0]), np.array([12.0, 15.0, 0.0])
    assert smape(y, f) == pytest.approx((200 * 2 / 22 + 200 * 5 / 35 + 0) / 3)
    assert wape(y, f) == pytest.approx(7 / 30)
    insample = np.array([1.0, 2.0, 4.0, 7.0])  # seasonal (m=2) naive errors 3, 5 -> scale 4
    assert mase(y, f, insample, 2) == pytest.approx((7 / 3) / 4)
