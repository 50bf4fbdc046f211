"""Per-partition training, a bucket at a time: the local process pool, the Azure ML run() shape,
resume and failures, and what a bucket's output holds."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from forecast_support import prepare_m3

from forecast_job import train
from forecast_job.fit import train_series
from forecast_job.frequency import windows_for
from forecast_job.gate import GateRule
from forecast_job.manifest import bucket_file, finished_units
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
    offset, length = record["artifacts"]["model"]
    model = pickle.loads(Path(record["bundle"]).read_bytes()[offset:offset + length])
    assert type(train.load_trained(record)) is type(model)  # what the benchmarks read, from the same range
    forecast = model.predict(h=18)["mean"]
    assert forecast.shape == (18,) and np.all(np.isfinite(forecast))
    assert not list(out.rglob("*.partial"))
    # a few files per bucket, not three per partition; progress reads the count off the names
    buckets = {e.bucket for e in manifest.partitions}
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(
        ["models.bin"] * len(buckets) + [f"partitions-{sum(e.bucket == b for e in manifest.partitions)}.json"
                                         for b in buckets])
    assert finished_units(str(p.relative_to(out)) for p in out.rglob("partitions-*.json")) == len(records)
    # one window of standardized holdout errors (|y - f| / the model's own sigma) per step, for the intervals
    scores = record["interval_scores"]
    assert set(scores) == {"model", "baseline"} and [len(w) for w in scores["model"]] == [18]
    assert all(score >= 0 for score in scores["model"][0] + scores["baseline"][0])
    assert model.calibration is None and model.floor == 0.0  # M3 sales are positive; publish calibrates


def test_a_resubmitted_run_trains_only_buckets_without_a_result(trained_run, caplog):
    manifest, work, out = trained_run
    stamps = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}
    caplog.set_level("INFO", logger="forecast_job")
    assert train.run_local(work, out, workers=1) == []
    assert "0 buckets to train" in caplog.text
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()} == stamps
    redo = manifest.partitions[3].bucket
    next(train.bucket_folder(out, redo).glob("partitions-*.json")).unlink()  # a crash before the last write
    caplog.clear()
    assert train.run_local(work, out, workers=1) == []
    assert "1 buckets to train" in caplog.text
    changed = {path.parent.name for path in out.rglob("*") if path.is_file() and stamps.get(path) !=
               path.stat().st_mtime_ns}
    assert changed == {f"bucket={redo:04d}"}


def test_a_partition_that_cannot_be_trained_is_recorded_failed_and_its_bucket_retried_next_time(tmp_path):
    manifest = prepare_m3(tmp_path / "work", limit=2)
    hard = manifest.model_copy(update={"horizon": 500})  # longer than the series: no holdout fits
    entry = hard.partitions[0]
    series = train.read_bucket(tmp_path / "work", entry.bucket)
    records = train.train_bucket(hard, entry.bucket, series, tmp_path / "out", retries=1)
    failed = next(r for r in records if r["partition_id"] == entry.id)
    assert failed["status"] == "failed" and "too short for an evaluation holdout of 500" in failed["error"]
    assert "artifacts" not in failed
    assert not train.is_done(tmp_path / "out", entry.bucket)
    assert train.run_local(tmp_path / "work", tmp_path / "out", workers=1, only=[entry.bucket]) == []
    assert train.is_done(tmp_path / "out", entry.bucket)
    assert len(list(train.bucket_folder(tmp_path / "out", entry.bucket).glob("partitions-*.json"))) == 1


def test_the_azure_ml_entry_trains_the_bucket_it_is_handed(tmp_path, monkeypatch):
    manifest = prepare_m3(tmp_path / "work", limit=6)
    bucket = manifest.partitions[1].bucket
    ids = sorted(e.id for e in manifest.in_bucket(bucket))
    monkeypatch.setattr(sys, "argv", ["prs", "--work", str(tmp_path / "work"), "--output", str(tmp_path / "out"),
                                      "--unrelated", "x"])
    from forecast_job import prs_entry

    prs_entry.init()
    rows = pd.read_parquet(bucket_file(tmp_path / "work", bucket)).sample(frac=1, random_state=0)  # any order
    context = SimpleNamespace(partition_key_value={"bucket": bucket})
    assert sorted(prs_entry.run(rows.assign(bucket=bucket), context)) == ids
    assert train.is_done(tmp_path / "out", bucket)
    done = next(train.bucket_folder(tmp_path / "out", bucket).glob("partitions-*.json"))
    stamp = done.stat().st_mtime_ns
    assert sorted(prs_entry.run(rows, context)) == ids  # a retried mini-batch: already done
    assert done.stat().st_mtime_ns == stamp
    trained = {r["partition_id"]: r for r in train.read_results(tmp_path / "out")}
    entry = manifest.entry(ids[0])
    assert trained[entry.id]["observations"] == entry.observations  # the shuffled rows were put back in order


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


def test_a_choice_that_fails_the_gate_gives_way_to_the_best_candidate_that_passes():
    """Only a model that passes the gate may serve: where the selection's choice fails it, the
    candidate with the next lowest selection metric that passes is refitted instead; where none
    passes, the choice stays (and the gate serves seasonal naive)."""
    y = monthly("m3", limit=1).table.target.to_numpy()
    always = {"horizon": 18, "season_length": 12, "selection_margin": 1.0}  # the combination is the choice
    free = train_series(y, **always, gate=GateRule(metric="mase", threshold=1e9))
    choice = free.candidates["Combination"]["mase"]
    runner_up = min((n for n in free.candidates if n not in ("SeasonalNaive", "Combination")),
                    key=lambda n: free.candidates[n]["mase"])
    assert free.model_type == "Combination" and free.candidates[runner_up]["mase"] < choice
    gated = train_series(y, **always, gate=GateRule(metric="mase", threshold=(free.candidates[runner_up]["mase"]
                                                                              + choice) / 2))
    assert (gated.model_type, gated.preferred, gated.metrics) == (runner_up, "Combination",
                                                                   free.candidates[runner_up])
    assert gated.model.predict(h=18)["mean"].shape == (18,)
    none_pass = train_series(y, **always, gate=GateRule(metric="mase", threshold=0))
    assert (none_pass.model_type, none_pass.preferred) == ("Combination", "")


def test_the_relative_mae_pools_the_windows():
    """All windows' absolute errors over all of seasonal naive's, not a mean of per-window ratios."""
    from forecast_job.metrics import mean_metrics, window_metrics

    y, insample = np.array([10.0, 10.0]), np.arange(24, dtype="float64")
    near_exact = window_metrics(y, np.array([11.0, 11.0]), insample, 12, np.array([10.1, 10.1]))  # ratio 10
    far_off = window_metrics(y, np.array([12.0, 12.0]), insample, 12, np.array([20.0, 20.0]))  # ratio 0.2
    assert mean_metrics([near_exact, far_off])["relative_mae"] == pytest.approx((1 + 2) / (0.1 + 10))
    assert "baseline_mae" not in mean_metrics([near_exact])


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


def test_a_long_history_is_evaluated_and_fitted_on_its_latest_fit_window_points(tmp_path):
    """Theta's optimizer costs grow faster than a series' length, so a 4,000-day series trains on its
    last `fit_window` points (the same model as trained on that tail alone); "all" keeps every point."""
    from forecast_job.options import options_from_metadata

    days = 1400
    t = np.arange(days)
    stamps = pd.date_range("2020-01-01", periods=days, freq="D")
    frame = pd.DataFrame({"store": "s1", "brand": "b1", "timestamp": stamps,
                          "sales": 50 + 10 * np.sin(2 * np.pi * t / 7) + 0.01 * t + (t % 5)})
    manifest = prepare_m3(tmp_path / "work", frame=frame)
    entry = manifest.partitions[0]
    y = train.read_bucket(tmp_path / "work", entry.bucket)[entry.id][1]
    windowed = manifest.model_copy(update={"train": manifest.train.model_copy(update={"fit_window": 400})})
    fitted = train.fit_partition(windowed, entry, y)
    alone = train_series(np.asarray(y[-400:], dtype="float64"), horizon=manifest.horizon,
                         season_length=manifest.season_length, model_set=manifest.train.model_set)
    assert fitted.record["fitted_points"] == 400 and entry.observations == days
    assert fitted.record["metrics"] == alone.metrics
    np.testing.assert_allclose(fitted.objects["model"].predict(h=manifest.horizon)["mean"],
                               alone.model.predict(h=manifest.horizon)["mean"])

    every = options_from_metadata({"fit_window": "all"})[1]
    assert every.fit_window is None and options_from_metadata({})[1].fit_window == 1000
    whole = manifest.model_copy(update={"train": manifest.train.model_copy(update={"fit_window": None})})
    assert train.fit_partition(whole, entry, y).record["fitted_points"] == days


def test_evaluation_windows_are_as_many_as_the_history_leaves_room_for():
    """Up to `windows` origins, each leaving two seasons of history before it; never fewer than one."""
    assert [windows_for(n, 18, 12, 2) for n in (20, 48, 59, 60, 126)] == [1, 1, 1, 2, 2]
    assert windows_for(126, 18, 12, 5) == 5 and windows_for(126, 18, 12, 1) == 1
    rng = np.random.default_rng(3)
    season = np.tile(np.sin(np.arange(12) / 12 * 2 * np.pi) * 10 + 50, 6)
    for n, expected in ((48, 1), (72, 2)):
        trained = train_series(season[:n] + rng.normal(0, 1, n), horizon=18, season_length=12, model_set="fast")
        assert trained.windows == expected
        assert len(trained.interval_scores["model"]) == expected  # one set of holdout errors a window
