"""The many-models activities against real Azurite: a table becomes a work folder (or a rejection),
a local run resumes where an earlier attempt stopped, and results land in output/ for SQL readers."""

from __future__ import annotations

import io

import duckdb
import pytest
from forecast_support import m3_table

from activities.compute import local_training
from activities.many_models.results import SUPERSEDED_TAG, collect_results, mark_superseded
from activities.many_models.validate import HEAD_BYTES, dataset_name, table_format, validate_table
from activities.work_layout import WorkLayout
from forecast_job.manifest import PARTITIONS_FILE, finished_units

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


def test_the_gate_rule_of_the_apps_settings_travels_with_the_job(store) -> None:
    """Validation writes the rule into the job's train options: training falls back to a candidate
    that passes it, and publish judges by it, whatever the settings are by then."""
    from forecast_job.gate import GateRule
    from forecast_job.options import TrainOptions
    from restyle.storage import BlobStore

    strict = BlobStore(store.service, store.settings.model_copy(update={"gate_metric": "accuracy",
                                                                        "gate_threshold": 0.8}))
    upload_table(strict, "gated.csv", 2)
    assert validate_table(strict, "gated.csv", "run-g")["accepted"]
    options = strict.read_json(strict.settings.work_container, WorkLayout("run-g").table)["options"]
    assert TrainOptions(**options["train"]).gate == GateRule(metric="accuracy", threshold=0.8)


def test_names_and_formats_are_read_from_the_upload() -> None:
    assert dataset_name("2026/Store Sales (EU).csv", {}) == "store-sales-eu"
    assert dataset_name("x.csv", {"dataset": "retail_eu"}) == "retail_eu"
    with pytest.raises(ValueError, match="dataset name"):
        dataset_name("x.csv", {"dataset": "Bad Name!"})
    assert table_format("sales", b"PAR1") == "parquet" and table_format("sales", b"stor") == "csv"


def test_a_local_run_prepares_resumes_and_its_results_are_one_sql_table(store, monkeypatch, tmp_path, capfd) -> None:
    settings = store.settings
    monkeypatch.setattr(local_training, "get_settings", lambda: settings)
    upload_table(store, "sales.csv", 4)
    table = validate_table(store, "sales.csv", "run-a")
    assert (table["accepted"], table["dataset"], table["format"], table["partition_columns"]) == (
        True, "sales", "csv", ["store"])
    layout = WorkLayout("run-a")
    assert store.read_json(settings.work_container, layout.table)["etag"] == table["etag"]
    assert list(store.list_names(settings.work_container, "run-a/")) == [layout.table]  # the app wrote no data

    assert local_training.run_training("run-a", tmp_path / "attempt-1", workers=1) == 0
    prepared = store.read_json(settings.work_container, layout.prepared)
    assert (prepared["accepted"], prepared["partitions"], prepared["rows"]) == (True, 4, len(m3_table(4)))
    done = sorted(n for n in store.list_names(settings.work_container, layout.trained_prefix)
                  if PARTITIONS_FILE.match(n.rsplit("/", 1)[-1]))
    assert finished_units(done) == 4 and len(done) == len({n.split("/")[2] for n in done})  # one file per bucket
    failed = [{**r, "status": "failed", "error": "OOM"} for r in store.read_json(settings.work_container, done[0])]
    store.write_json(settings.work_container, done[0], failed)  # as if attempt 1 had failed this bucket

    capfd.readouterr()
    assert local_training.run_training("run-a", tmp_path / "attempt-2", workers=1) == 0
    assert "1 buckets to train" in capfd.readouterr().err  # the training log: the other buckets were done
    assert {r["status"] for r in store.read_json(settings.work_container, done[0])} == {"trained"}

    models = sorted(store.list_names(settings.work_container, "models/sales/"))
    assert "models/sales/production.json" in models and all(
        n.startswith("models/sales/run-a/bucket=") and n.endswith(".bin") for n in models if n.endswith(".bin"))
    summary = collect_results(store, "run-a", "sales")
    assert summary["accepted"] and summary["trained"] == 4
    assert set(summary["outputs"]) == {"forecasts", "metrics", "gate", "history"}
    assert summary["partitions_short"] == 0 and summary["superseded_bundles"] == 0
    local = tmp_path / "output"
    store.download_folder(settings.output_container, "many-models/sales/", local)
    rows = duckdb.sql(f"select store, count(*) from read_parquet('{local}/forecasts/*/*.parquet', "
                      "hive_partitioning = true) group by store").fetchall()
    assert len(rows) == 4 and {count for _, count in rows} == {6}


def test_a_fault_deep_in_a_table_is_found_by_prepare_and_rejects_the_upload(store, monkeypatch, tmp_path) -> None:
    """The app reads only the head: a bad date 300 KiB in passes validation; prepare refuses the table
    with the row, the compute job ends well (no resubmission) and collect_results rejects the upload."""
    settings = store.settings
    monkeypatch.setattr(local_training, "get_settings", lambda: settings)
    frame = m3_table(300)
    frame.loc[len(frame) - 3, "timestamp"] = "31/31/2001"
    data = io.BytesIO()
    frame.to_csv(data, index=False)
    assert data.tell() > HEAD_BYTES
    store.write_bytes(settings.tables_container, "late.csv", data.getvalue(), "text/csv")
    store.service.get_blob_client(settings.tables_container, "late.csv").set_blob_metadata(OPTIONS)
    assert validate_table(store, "late.csv", "run-late")["accepted"]
    assert local_training.run_training("run-late", tmp_path / "attempt-1", workers=1) == 0
    rejected = collect_results(store, "run-late", "late")
    assert not rejected["accepted"] and f"row {len(frame) - 1}: '31/31/2001'" in rejected["reason"]
    assert not store.exists(settings.tables_container, "late.csv")
    assert store.read_json(settings.rejected_container, "late.csv.reason.json")["reason"] == rejected["reason"]


def test_bundles_no_production_map_names_are_tagged_for_the_lifecycle_rule(store) -> None:
    from forecast_job.production_map import ProductionMap
    from forecast_job.registry import ModelVersion

    container = store.settings.work_container
    used = "azureml://datastores/work/paths/models/tagged/r2/bucket=0001.bin"
    version = ModelVersion("tagged-p1", 2, "tagged", "p1", "r2", "Theta", {"store": "1"}, {}, f"{used}#bytes=0-9")
    store.write_bytes(container, "models/tagged/production.json",
                      ProductionMap("tagged", "r2", {"p1": version}, {"p1": 2}).to_json().encode(), "application/json")
    for name in ("r1/bucket=0001.bin", "r2/bucket=0001.bin", "r1/bucket=0002.bin"):
        store.write_bytes(container, f"models/tagged/{name}", b"0123456789", "application/octet-stream")
    assert mark_superseded(store, "tagged") == 2
    tags = {name: store.service.get_blob_client(container, f"models/tagged/{name}").get_blob_tags()
            for name in ("r1/bucket=0001.bin", "r2/bucket=0001.bin", "r1/bucket=0002.bin")}
    assert tags == {"r1/bucket=0001.bin": {SUPERSEDED_TAG: "true"}, "r2/bucket=0001.bin": {},
                    "r1/bucket=0002.bin": {SUPERSEDED_TAG: "true"}}
    assert mark_superseded(store, "tagged") == 0  # already tagged
