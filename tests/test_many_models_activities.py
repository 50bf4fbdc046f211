"""The many-models activities against real Azurite: a table becomes a work folder (or a rejection),
a local run resumes where an earlier attempt stopped, and results land in output/ for SQL readers."""

from __future__ import annotations

import io

import duckdb
import pytest
from forecast_support import m3_table

from activities.compute import local_training
from activities.many_models.results import collect_results
from activities.many_models.validate import dataset_name, table_format, validate_table
from activities.work_layout import WorkLayout

OPTIONS = {"target_column": "sales", "model_set": "fast", "horizon": "6"}


def upload_table(store, name: str, series: int, **metadata: str) -> None:
    data = io.BytesIO()
    m3_table(series).to_csv(data, index=False)
    store.write_bytes(store.settings.tables_container, name, data.getvalue(), "text/csv")
    blob = store.service.get_blob_client(store.settings.tables_container, name)
    blob.set_blob_metadata({**OPTIONS, **metadata})


def test_the_apps_gate_settings_default_to_the_gate_rules_defaults() -> None:
    from forecast_job.gate import GateRule
    from restyle.settings import Settings

    settings = Settings()
    assert (settings.gate_metric, settings.gate_threshold) == (GateRule().metric, GateRule().threshold)


def test_names_and_formats_are_read_from_the_upload() -> None:
    assert dataset_name("2026/Store Sales (EU).csv", {}) == "store-sales-eu"
    assert dataset_name("x.csv", {"dataset": "retail_eu"}) == "retail_eu"
    with pytest.raises(ValueError, match="dataset name"):
        dataset_name("x.csv", {"dataset": "Bad Name!"})
    assert table_format("sales", b"PAR1") == "parquet" and table_format("sales", b"stor") == "csv"


def test_a_local_run_resumes_and_its_results_are_one_sql_table(store, monkeypatch, tmp_path, capfd) -> None:
    settings = store.settings
    monkeypatch.setattr(local_training, "get_settings", lambda: settings)
    upload_table(store, "sales.csv", 4)
    table = validate_table(store, "sales.csv", "run-a")
    assert (table["accepted"], table["partitions_total"], table["dataset"]) == (True, 4, "sales")
    assert store.exists(settings.work_container, "run-a/manifest.json")

    assert local_training.run_training("run-a", tmp_path / "attempt-1", workers=1) == 0
    trained = WorkLayout("run-a").trained_prefix
    results = sorted(n for n in store.list_names(settings.work_container, trained) if n.endswith("/result.json"))
    assert len(results) == 4
    failed = {**store.read_json(settings.work_container, results[0]), "status": "failed", "error": "OOM"}
    store.write_json(settings.work_container, results[0], failed)  # as if attempt 1 had failed this partition

    capfd.readouterr()
    assert local_training.run_training("run-a", tmp_path / "attempt-2", workers=1) == 0
    assert "run run-a: 4 partitions, 3 already trained, 1 to train" in capfd.readouterr().err  # the training log
    assert store.read_json(settings.work_container, results[0])["status"] == "trained"  # the retrained result

    summary = collect_results(store, "run-a", "sales")
    assert summary["trained"] == 4 and set(summary["outputs"]) == {"forecasts", "metrics", "gate", "history"}
    assert summary["partitions_short"] == 0
    local = tmp_path / "output"
    store.download_folder(settings.output_container, "many-models/sales/", local)
    rows = duckdb.sql(f"select store, count(*) from read_parquet('{local}/forecasts/*/*.parquet', "
                      "hive_partitioning = true) group by store").fetchall()
    assert len(rows) == 4 and {count for _, count in rows} == {6}
