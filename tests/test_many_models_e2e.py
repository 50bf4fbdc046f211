"""The many-models pipeline end to end: a sales table dropped into tables/ on devhost (a child
process) with real Azurite and the local backend trains, registers, gates and forecasts every
partition, followed over the jobs API; bad tables and bad partitions are answered with reasons."""

from __future__ import annotations

import io
import json
import uuid

import pandas as pd
import pyarrow.parquet as pq
import pytest
from azure.storage.blob import BlobServiceClient
from e2e_support import CONTAINER_KINDS, app_env, ended, jobs_for, wait_for
from forecast_support import m3_table

from devhost.process import DevhostProcess
from forecast_job.publish import open_registry
from forecast_job.registry import find_production
from tools.azurite import free_port

FAST_TRAINING = {"target_column": "sales", "model_set": "fast", "horizon": "6"}


@pytest.fixture(scope="module")
def world(azurite, tmp_path_factory):
    tag = uuid.uuid4().hex[:8]
    containers = {kind: f"mm{kind}{tag}" for kind in CONTAINER_KINDS}
    scratch = tmp_path_factory.mktemp("mm")
    env = app_env(containers, scratch, local_forecast_workers="1", activity_retry_attempts="2")
    host = DevhostProcess(free_port(), scratch / "state", azurite, scratch / "devhost.log", env=env,
                          extra_args=("--blob-poll-seconds", "0.5")).start()
    service = BlobServiceClient.from_connection_string(azurite)
    for name in containers.values():
        service.create_container(name)
    yield {"host": host, "service": service, "containers": containers, "registry": scratch / "work" / "models"}
    host.stop()


def drop(world: dict, name: str, data: bytes, metadata: dict[str, str]) -> dict:
    """Upload to tables/ and wait for the job it starts to end; returns the job's view."""
    client = world["service"].get_blob_client(world["containers"]["tables"], name)
    client.upload_blob(data, overwrite=True, metadata=metadata)
    host = world["host"]
    [job] = wait_for(lambda: jobs_for(host, name), 30, "the job")
    return wait_for(lambda: ended(host, job["id"]), 240, "the job to end", interval=1)


def read_blob(world: dict, kind: str, name: str) -> bytes:
    return world["service"].get_blob_client(world["containers"][kind], name).download_blob().readall()


def test_a_table_of_many_series_is_trained_registered_gated_and_forecast(world):
    table = m3_table(8)
    first = table[table["store"] == table["store"].iloc[0]]
    short = first.head(10).assign(store="tiny")  # shorter than min_length (6 + 24): a short history
    broken = first.assign(store="broken", sales=first.sales.where(first.index != first.index[4]))  # an empty cell
    data = io.BytesIO()
    pd.concat([table, short, broken]).assign(region="north").to_csv(data, index=False)
    job = drop(world, "Sales History.csv", data.getvalue(), FAST_TRAINING)

    assert job["status"] == "Completed", job
    assert job["pipeline"] == "many_models" and job["stage"] == "done"
    output = job["output"]
    assert output["dataset"] == "sales-history"
    assert (output["trained"], output["partitions_short"], output["partitions_rejected"],
            output["partitions_failed"]) == (9, 1, 1, 0)
    assert sum(output["decisions"].values()) == 9 and output["decisions"]["promote_short"] == 1
    assert job["progress"]["partitions_done"] == job["progress"]["partitions_total"] == 9

    forecasts_prefix = output["outputs"]["forecasts"].split("/", 1)[1]
    names = list(world["service"].get_container_client(world["containers"]["output"]).list_blob_names(
        name_starts_with=forecasts_prefix))
    forecasts = pq.read_table(io.BytesIO(read_blob(world, "output", names[0]))).to_pandas()
    assert len(forecasts) == 9 * 6 and forecasts["store"].nunique() == 9  # every partition with data, horizon 6
    assert forecasts[["lo_80", "hi_80", "lo_95", "hi_95"]].notna().all().all()
    assert set(forecasts[forecasts.short_history].store) == {"tiny"}
    report_prefix = output["outputs"]["gate"].split("/", 1)[1]
    report = json.loads(read_blob(world, "output", report_prefix + "gate_report.json"))
    assert [r["keys"]["store"] for r in report["rejected_partitions"]] == ["broken"]
    assert [p["code"] for p in report["rejected_partitions"][0]["problems"]] == ["missing_values"]

    registry = open_registry(f"index:{world['registry'] / 'registry.sqlite'}")
    store = table["store"].iloc[0]
    production = find_production(registry, "sales-history", {"store": store, "region": "north"})
    assert production.run_id == job["id"] and production.keys == {"store": store, "region": "north"}
    assert production.tags()["key.store"] == store and "metric.mase" in production.tags()
    status, answer = world["host"].request("POST", "/api/forecast", {
        "dataset": "sales-history", "keys": {"store": store, "region": "north"}, "horizon": 3})
    assert status == 200, answer
    [item] = answer["forecasts"]
    assert (item["model"]["version"], len(item["forecast"])) == (production.version, 3)
    assert set(item["forecast"][0]) == {"timestamp", "mean", "lo_80", "hi_80", "lo_95", "hi_95"}
    status, answer = world["host"].request("POST", "/api/forecast", {
        "dataset": "sales-history", "keys": {"store": "tiny", "region": "north"}, "horizon": 3, "levels": [90]})
    assert status == 200, answer
    [item] = answer["forecasts"]
    assert item["model"]["flagged"] and item["model"]["short_history"]["observations"] == 10
    assert item["model"]["short_history"]["reason"].startswith("10 observations, fewer than min_length 30")
    assert all(step["lo_90"] <= step["mean"] <= step["hi_90"] for step in item["forecast"])
    status, answer = world["host"].request("POST", "/api/forecast", {
        "dataset": "sales-history", "keys": {"store": "broken", "region": "north"}, "horizon": 3})
    assert (status, answer["error"]["code"]) == (404, "partition_not_found")  # rejected: never trained
    status, answer = world["host"].request("POST", "/api/forecast", {
        "dataset": "sales-history", "keys": {"store": store, "region": "north"}, "horizon": 3, "levels": [99.9]})
    assert (status, answer["error"]["code"]) == (400, "invalid_levels") and "`levels`" in answer["error"]["message"]

    work = world["service"].get_container_client(world["containers"]["work"])
    assert list(work.list_blob_names(name_starts_with=f"{job['id']}/")) == []  # cleaned up after success


@pytest.mark.parametrize(("name", "data", "metadata", "reason"), [
    ("no-target.csv", b"store,timestamp,units\na,2020-01-01,1\n", {}, "missing columns ['target']"),
    ("dates.csv", b"store,timestamp,target\na,yesterday,1\n", {}, "timestamp"),
    ("bad-option.csv", b"store,timestamp,target\na,2020-01-01,1\n", {"horizon": "-3"}, "horizon"),
    ("bad-levels.csv", b"store,timestamp,target\na,2020-01-01,1\n", {"levels": "80,100"}, "`levels`: 100 is outside"),
    ("many-levels.csv", b"store,timestamp,target\na,2020-01-01,1\n", {"levels": "60,70,80,90,95,97"},
     "`levels` has 6 levels"),
    ("picture.parquet", b"\x89PNG\r\n\x1a\n" + bytes(100), {}, "cannot read"),
])
def test_a_bad_table_is_rejected_with_its_reason_and_kept(world, name, data, metadata, reason):
    job = drop(world, name, data, metadata)
    assert job["status"] == "Failed" and "table rejected" in job["error"] and reason in job["error"], job
    record = json.loads(read_blob(world, "rejected", f"{name}.reason.json"))
    assert reason in record["reason"]
    assert read_blob(world, "rejected", name) == data  # the upload itself is kept, beside its reason
    work = world["service"].get_container_client(world["containers"]["work"])
    assert list(work.list_blob_names(name_starts_with=f"{job['id']}/")) == []  # nothing half-written
