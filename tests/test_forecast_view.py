"""The jobs page's forecast view API over a real published run in Azurite's output container: the
gate's counts and a search by keys, one partition's history, forecast and bounds, and every refusal."""

from __future__ import annotations

import pytest
from forecast_support import m3_table, prepare_m3

from api.errors import ApiError
from api.forecast_view import partition_forecast, partition_list
from forecast_job import train
from forecast_job.publish import publish
from forecast_job.registry import FolderArtifacts, IndexRegistry


@pytest.fixture
def finished(store, tmp_path):
    """A run of 5 M3 series (one cut short, one with an empty cell) published into output/ as
    collect_results leaves it, and the job view GET /api/jobs/{id} gives for it."""
    frame = m3_table(5)
    stores = list(dict.fromkeys(frame.store))
    frame = frame.drop(index=frame.index[frame.store == stores[0]][20:])  # 20 points: a short history
    frame.loc[frame.index[frame.store == stores[1]][3], "sales"] = None  # rejected
    manifest = prepare_m3(tmp_path / "work", frame=frame)
    assert train.run_local(tmp_path / "work", tmp_path / "out", workers=1) == []
    registry, artifacts = IndexRegistry(tmp_path / "registry.sqlite"), FolderArtifacts(tmp_path / "artifacts")
    publish(tmp_path / "work", tmp_path / "out", registry, artifacts, tmp_path / "results")
    container = store.settings.output_container
    store.upload_folder(container, "many-models/m3/", tmp_path / "results")
    outputs = {folder: f"{container}/many-models/m3/{folder}/run_id=run1/"
               for folder in ("forecasts", "metrics", "gate", "history")}
    job = {"id": "run1", "pipeline": "many_models", "status": "Completed", "output": {"outputs": outputs}}
    return job, manifest, stores


def test_the_gate_summary_counts_every_partition_and_the_search_finds_them_by_keys(store, finished):
    job, _, stores = finished
    found = partition_list(store, job)
    assert (found["dataset"], found["run_id"], found["total"], found["matches"]) == ("m3", "run1", 5, 5)
    counts = found["counts"]
    assert (counts["short_history"], counts["rejected"], counts["failed"]) == (1, 1, 0)
    assert counts["passed"] + counts["fallback"] + counts["champion"] == 3
    rows = {row["keys"]["store"]: row for row in found["partitions"]}
    assert rows[stores[0]]["status"] == "short_history" and rows[stores[0]]["observations"] == 20
    assert rows[stores[1]]["status"] == "rejected" and "1 target values are empty" in rows[stores[1]]["reason"]
    only = partition_list(store, job, query=f"store={stores[2]}")
    assert [row["keys"]["store"] for row in only["partitions"]] == [stores[2]] and only["counts"] == counts
    assert partition_list(store, job, status="short_history")["matches"] == 1
    assert partition_list(store, job, query="no-such-store")["partitions"] == []
    assert len(partition_list(store, job, limit=2)["partitions"]) == 2


def test_one_partition_has_its_history_forecast_and_nested_bounds(store, finished):
    job, manifest, stores = finished
    entry = next(e for e in manifest.partitions if e.keys["store"] == stores[0])
    view = partition_forecast(store, job, entry.id)
    assert view["keys"] == entry.keys and view["levels"] == [80.0, 95.0]
    assert len(view["history"]) == entry.observations == 20
    assert view["history"][-1]["timestamp"] == entry.last_timestamp
    assert len(view["forecast"]) == manifest.horizon and view["forecast"][0]["timestamp"] > entry.last_timestamp
    for step in view["forecast"]:
        assert step["lo_95"] <= step["lo_80"] <= step["mean"] <= step["hi_80"] <= step["hi_95"]
    model = view["model"]
    assert model["short_history"] and model["flagged"] and model["observations"] == 20
    assert model["short_history_reason"].startswith("20 observations")


@pytest.mark.parametrize(("change", "status", "code"), [
    ({"status": "Running"}, 409, "no_forecasts"),
    ({"pipeline": "video"}, 409, "no_forecasts"),
    ({"output": {}}, 409, "no_forecasts"),
])
def test_a_job_without_forecasts_is_refused(store, finished, change, status, code):
    job, *_ = finished
    with pytest.raises(ApiError) as refused:
        partition_list(store, {**job, **change})
    assert (refused.value.status, refused.value.code) == (status, code)


def test_bad_queries_are_refused_with_their_reason(store, finished):
    job, *_ = finished
    for call, code in ((lambda: partition_list(store, job, status="great"), "invalid_status"),
                       (lambda: partition_list(store, job, limit=0), "invalid_limit"),
                       (lambda: partition_list(store, job, limit=201), "invalid_limit"),
                       (lambda: partition_forecast(store, job, ""), "invalid_partition"),
                       (lambda: partition_forecast(store, job, "p0000000000000000"), "partition_not_found")):
        with pytest.raises(ApiError) as refused:
            call()
        assert refused.value.code == code, refused.value.message
