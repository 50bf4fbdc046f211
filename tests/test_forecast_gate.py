"""The promotion gate (champion vs challenger, flagged baselines) and the whole publish step:
register, gate, forecast Parquet, metrics table, gate report, read back with DuckDB as documented."""

from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest
from forecast_support import FAST, m3_table, prepare_m3

from forecast_job import train
from forecast_job.gate import GateRule, gate_report, run_gate
from forecast_job.publish import main as publish_main
from forecast_job.publish import publish
from forecast_job.registry import FolderArtifacts, IndexRegistry, NewVersion, find_production

KEYS = {"store": "7"}
MASE = GateRule(metric="mase")


def challenger(run: str, mase: float, accuracy: float = 0.9) -> NewVersion:
    metrics = {"mase": mase, "accuracy": accuracy, "baseline.mase": 1.3, "baseline.accuracy": 0.7}
    return NewVersion("retail", run, KEYS, "AutoETS", metrics, f"file:///{run}/model.pkl", f"file:///{run}/base.pkl",
                      last_timestamp="2024-01-01T00:00:00", freq="MS")


def gate(registry, run: str, mase: float, rule: GateRule = MASE, **kwargs):
    [decision] = run_gate(registry, registry.register_many([challenger(run, mase, **kwargs)]), rule)
    return decision, find_production(registry, "retail", KEYS)


@pytest.fixture
def registry(tmp_path):
    return IndexRegistry(tmp_path / "index.sqlite")


def test_a_passing_challenger_without_champion_is_promoted(registry):
    decision, production = gate(registry, "r1", 0.8)
    assert (decision.action, decision.passed, decision.champion_version) == ("promote", True, None)
    assert (production.run_id, production.flagged, production.version) == ("r1", False, 1)


def test_a_failing_challenger_keeps_the_champion(registry):
    gate(registry, "r1", 0.8)
    decision, production = gate(registry, "r2", 1.4)
    assert (decision.action, decision.passed, decision.champion_version) == ("keep_champion", False, 1)
    assert "champion v1 keeps serving" in decision.reason and production.run_id == "r1"


def test_a_failing_challenger_without_champion_serves_a_flagged_baseline(registry):
    decision, production = gate(registry, "r1", 1.4)
    assert decision.action == "promote_baseline" and decision.flagged
    assert (production.model_type, production.flagged, production.artifact) == ("SeasonalNaive", True,
                                                                                "file:///r1/base.pkl")
    assert production.metrics == {"mase": 1.3, "accuracy": 0.7} and production.version == 2
    # the flagged fallback is no champion: the next passing challenger replaces it, whatever its metric
    decision, production = gate(registry, "r2", 0.99)
    assert decision.action == "promote" and (production.run_id, production.flagged) == ("r2", False)


def test_a_challenger_worse_than_the_champion_does_not_replace_it(registry):
    gate(registry, "r1", 0.6)
    decision, production = gate(registry, "r2", 0.7)
    assert (decision.action, decision.passed) == ("keep_champion", True) and "champion v1 is better" in decision.reason
    assert production.run_id == "r1"
    decision, production = gate(registry, "r3", 0.5)
    assert decision.action == "promote" and production.run_id == "r3" and decision.champion_version == 1


def test_the_default_rule_is_beating_seasonal_naive_on_the_holdout(registry):
    rule = GateRule()
    assert rule.describe() == "relative_mae < 1"
    assert rule.passes({"relative_mae": 0.9, "mase": 3.0}) and not rule.passes({"relative_mae": 1.0, "mase": 0.1})
    assert not rule.passes({"mase": 0.5}) and not rule.passes({"relative_mae": float("nan")})


def test_the_business_rule_accuracy_above_80_percent(registry):
    rule = GateRule(metric="accuracy", threshold=0.8)
    decision, _ = gate(registry, "r1", 5.0, rule, accuracy=0.79)
    assert decision.action == "promote_baseline" and rule.describe() == "accuracy > 0.8"
    decision, production = gate(registry, "r2", 5.0, rule, accuracy=0.85)
    assert decision.action == "promote" and production.run_id == "r2"
    report = gate_report([decision], rule, "r2", "retail")
    assert (report["pass_rate"], report["decisions"]["promote"], report["rule"]) == (1.0, 1, "accuracy > 0.8")


def test_publish_registers_gates_and_forecasts_every_partition(tmp_path):
    frame = m3_table(13)
    short, bad = frame.store.iloc[0], frame.store.unique()[-1]
    frame = frame.drop(index=frame.index[frame.store == short][30:])  # a short history: 30 of the 42 points
    frame.loc[frame.index[frame.store == bad][3], "sales"] = None  # rejected: a missing value
    manifest = prepare_m3(tmp_path / "work", frame=frame)
    assert train.run_local(tmp_path / "work", tmp_path / "out", workers=2) == []
    registry = IndexRegistry(tmp_path / "registry" / "index.sqlite")
    artifacts = FolderArtifacts(tmp_path / "registry" / "artifacts")
    summary = publish(tmp_path / "work", tmp_path / "out", registry, artifacts, tmp_path / "results")
    assert (summary.registered, summary.short_history, summary.rejected, summary.failed, summary.unserved) == (
        12, 1, 1, 0, 0)

    report = json.loads((tmp_path / "results" / "gate" / "run_id=run1" / "gate_report.json").read_text())
    assert report["trained"] == 12 and sum(report["decisions"].values()) == 12 and report["short_history"] == 1
    assert report["rejected_partitions"][0]["keys"] == {"store": bad}
    judged = [p for p in report["partitions"] if not p["short_history"]]
    assert report["pass_rate"] == pytest.approx(sum(p["passed"] for p in judged) / 11)
    [row] = [p for p in report["partitions"] if p["keys"] == {"store": short}]
    assert (row["action"], row["passed"], row["flagged"], row["observations"]) == ("promote_short", False, True, 30)
    assert row["reason"].startswith("short history: 30 observations, fewer than min_length 42")
    production = find_production(registry, "m3", {"store": short})
    assert (production.flagged, production.observations, production.baseline_artifact) == (True, 30, "")

    # the query docs/many-models.md shows
    query = """
        SELECT f.store, f.ds, f.forecast, f.model_type, f.flagged, m.gate_action, m.mase, m.accuracy
        FROM read_parquet('{root}/forecasts/*/*.parquet', hive_partitioning = true) AS f
        JOIN read_parquet('{root}/metrics/*/*.parquet', hive_partitioning = true) AS m
          USING (run_id, partition_id)
        WHERE f.run_id = 'run1'
        ORDER BY f.store, f.ds
    """.format(root=tmp_path / "results")
    rows = duckdb.sql(query).df()
    assert len(rows) == 12 * 18 and rows.groupby("store").size().eq(18).all()
    long = next(e for e in manifest.partitions if not e.short_history)
    assert rows[rows.store == long.keys["store"]].ds.min() == (pd.Timestamp(long.last_timestamp)
                                                               + pd.offsets.MonthBegin(1))
    assert rows.forecast.notna().all() and set(rows.gate_action) <= {"promote", "promote_baseline", "promote_short"}
    metrics = pd.read_parquet(tmp_path / "results" / "metrics" / "run_id=run1" / "part-0.parquet").set_index("store")
    assert metrics.loc[bad, "status"] == "rejected" and "1 target values are empty" in metrics.loc[bad, "error"]
    assert (metrics.loc[short, "status"], metrics.loc[short, "short_history"], metrics.loc[short, "observations"]) == (
        "trained", True, 30)
    assert metrics.loc[short, "short_history_reason"].startswith("30 observations") and metrics.short_history.sum() == 1

    # every partition's forecast has its 80% and 95% interval, nested around the point forecast
    forecasts = pd.read_parquet(tmp_path / "results" / "forecasts" / "run_id=run1" / "part-0.parquet")
    assert {"lo_80", "hi_80", "lo_95", "hi_95"} <= set(forecasts.columns)
    assert forecasts[["lo_80", "hi_80", "lo_95", "hi_95"]].notna().all().all()
    assert ((forecasts.lo_95 <= forecasts.lo_80) & (forecasts.lo_80 <= forecasts.forecast)
            & (forecasts.forecast <= forecasts.hi_80) & (forecasts.hi_80 <= forecasts.hi_95)).all()
    assert (forecasts.lo_95 >= 0).all()  # sales that were never negative get no negative lower bound
    assert forecasts.groupby("store").short_history.first().to_dict() == {s: s == short for s in forecasts.store}
    assert set(forecasts[forecasts.short_history].observations) == {30}
    history = pd.read_parquet(tmp_path / "results" / "history" / "run_id=run1" / "part-0.parquet")
    assert history.groupby("store").size().to_dict() == {e.keys["store"]: e.observations for e in manifest.partitions}

    # a second run of the same data: every partition has a champion now; repeats register nothing twice
    prepare_m3(tmp_path / "work2", run_id="run2", frame=frame)
    assert train.run_local(tmp_path / "work2", tmp_path / "out2", workers=1) == []
    assert publish_main(["--work", str(tmp_path / "work2"), "--output", str(tmp_path / "out2"), "--registry",
                         f"index:{tmp_path / 'registry' / 'index.sqlite'}", "--artifacts",
                         str(tmp_path / "registry" / "artifacts"), "--results", str(tmp_path / "results")]) == 0
    again = publish(tmp_path / "work2", tmp_path / "out2", registry, artifacts, tmp_path / "results")
    assert again.registered == 12 and len(registry.search({"run_id": "run2", "flagged": "false"})) == 11
    second = json.loads((tmp_path / "results" / "gate" / "run_id=run2" / "gate_report.json").read_text())
    actions = {p["keys"]["store"]: p["action"] for p in second["partitions"]}
    assert actions.pop(short) == "promote_short"  # a flagged short-history champion is no champion to keep
    assert set(actions.values()) <= {"promote", "keep_champion", "promote_baseline"}
    runs = duckdb.sql(f"SELECT DISTINCT run_id FROM read_parquet('{tmp_path}/results/forecasts/*/*.parquet', "
                      "hive_partitioning = true) ORDER BY 1").fetchall()
    assert runs == [("run1",), ("run2",)]


def test_publish_judges_by_the_rule_the_run_was_trained_under(tmp_path):
    """The rule travels in the manifest (the app's settings at validation), not on publish's command line."""
    rule = GateRule(metric="accuracy", threshold=0.999)
    prepare_m3(tmp_path / "work", limit=3, train=FAST.model_copy(update={"gate": rule}))
    assert train.run_local(tmp_path / "work", tmp_path / "out", workers=1) == []
    registry = IndexRegistry(tmp_path / "registry" / "index.sqlite")
    artifacts = FolderArtifacts(tmp_path / "artifacts")
    publish(tmp_path / "work", tmp_path / "out", registry, artifacts, tmp_path / "results")
    report = json.loads((tmp_path / "results" / "gate" / "run_id=run1" / "gate_report.json").read_text())
    assert report["rule"] == "accuracy > 0.999" and report["decisions"]["promote_baseline"] == 3
