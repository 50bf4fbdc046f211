"""Real-time forecasts: the model cache (bytes bound, LRU, single flight, errors), the production map
(read once, revalidated by ETag, a promotion seen by the next request), warm-up, and POST
/api/forecast's every answer, over models a real run trained and registered (forecast_job on a
few M3 series); the online endpoint's script over the same bundles and map in blob storage."""

from __future__ import annotations

import pickle
import threading
import time

import pytest
from forecast_support import prepare_m3

from api.errors import ApiError
from api.forecast import forecast_request
from forecast_job import train
from forecast_job.production_map import FolderMaps, ProductionMaps, map_path
from forecast_job.publish import load_map, publish
from forecast_job.registry import FolderArtifacts, IndexRegistry
from forecast_job.serving import Forecaster, ForecastRequest, ModelCache
from restyle.settings import Settings

SETTINGS = Settings(max_forecast_horizon=24, max_forecast_batch=3)
MODELS_URI = "azureml://datastores/work/paths/models"  # as the Azure ML pipeline's publish records them


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """Four M3 monthly series trained and registered once (dataset "m3", keys {"store": <series>})."""
    root = tmp_path_factory.mktemp("serving")
    manifest = prepare_m3(root / "work", limit=4)
    assert train.run_local(root / "work", root / "out", workers=1) == []
    registry, artifacts = IndexRegistry(root / "registry.sqlite"), FolderArtifacts(root / "artifacts", MODELS_URI)
    publish(root / "work", root / "out", registry, artifacts, root / "results")
    return registry, artifacts, [entry.keys for entry in manifest.partitions], root / "results"


def forecaster(registered, max_bytes: int = 10**8, warm_up: int = 0) -> Forecaster:
    _, artifacts, *_ = registered
    return Forecaster(ProductionMaps(FolderMaps(artifacts.root), refresh_seconds=0), artifacts,
                      ModelCache(max_bytes), warm_up)


# --- the cache ---------------------------------------------------------------------------------

def test_the_cache_keeps_the_most_recent_models_within_its_bytes() -> None:
    blob = {name: pickle.dumps(name * 30) for name in "abc"}  # equal sizes: room for two
    cache = ModelCache(max_bytes=len(blob["a"]) + len(blob["b"]))
    for name in ("a", "b", "a", "c"):  # c pushes out b, the least recently used
        cache.get((name, 1), lambda name=name: blob[name])
    assert {key[0] for key in cache._entries} == {"a", "c"} and cache.bytes <= cache.max_bytes
    assert (cache.stats.hits, cache.stats.misses, cache.stats.evictions) == (1, 3, 1)
    assert cache.get(("b", 1), lambda: blob["b"]) == "b" * 30  # evicted: loaded again
    huge = pickle.dumps("x" * 10_000)
    assert cache.get(("huge", 1), lambda: huge) == "x" * 10_000 and ("huge", 1) not in cache._entries


def test_concurrent_requests_for_a_cold_model_load_it_once() -> None:
    cache, fetches = ModelCache(10**6), []

    def slow_fetch() -> bytes:
        fetches.append(1)
        time.sleep(0.3)
        return pickle.dumps({"model": 1})

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(("m", 1), slow_fetch))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [{"model": 1}] * 8 and len(fetches) == 1 and cache.stats.loads == 1


def test_a_failed_load_fails_its_waiters_and_the_next_request_tries_again() -> None:
    cache = ModelCache(10**6)
    with pytest.raises(FileNotFoundError):
        cache.get(("m", 1), lambda: (_ for _ in ()).throw(FileNotFoundError("artifact gone")))
    assert cache.get(("m", 1), lambda: pickle.dumps(7)) == 7


# --- forecasts, promotion and warm-up ----------------------------------------------------------

def test_a_forecast_continues_the_series_with_the_production_version(registered) -> None:
    registry, _, partitions, _ = registered
    answer = forecaster(registered).forecast("m3", partitions[0], 6).as_dict()
    production = registry.by_alias(answer["model"]["name"])
    assert answer["model"]["version"] == production.version and "mase" in answer["model"]["metrics"]
    assert len(answer["forecast"]) == 6
    first = answer["forecast"][0]["timestamp"]
    assert first > production.last_timestamp and first.endswith("-01T00:00:00")  # the next month start
    assert answer["model"]["short_history"] is None


def test_every_step_carries_its_interval_bounds_as_the_forecast_parquet_does(registered) -> None:
    import pandas as pd

    registry, _, partitions, _ = registered
    answer = forecast_request(forecaster(registered), SETTINGS, {"dataset": "m3", "keys": partitions[1], "horizon": 18})
    steps = answer["forecasts"][0]["forecast"]
    assert answer["levels"] == [80.0, 95.0] and set(steps[0]) == {"timestamp", "mean", "lo_80", "hi_80", "lo_95",
                                                                   "hi_95"}
    for step in steps:
        assert step["lo_95"] <= step["lo_80"] <= step["mean"] <= step["hi_80"] <= step["hi_95"]
    run = registry.by_alias(answer["forecasts"][0]["model"]["name"]).run_id
    batch = pd.read_parquet(registered[3] / "forecasts" / f"run_id={run}" / "part-0.parquet")
    batch = batch[batch.store == partitions[1]["store"]].sort_values("ds")
    for column in ("mean", "lo_80", "hi_95"):  # the batch forecast and the endpoint: one model, one answer
        parquet = batch["forecast" if column == "mean" else column].to_numpy()
        assert [step[column] for step in steps] == pytest.approx(parquet)
    other = forecast_request(forecaster(registered), SETTINGS,
                             {"dataset": "m3", "keys": partitions[1], "horizon": 2, "levels": [90, 99]})
    assert set(other["forecasts"][0]["forecast"][0]) == {"timestamp", "mean", "lo_90", "hi_90", "lo_99", "hi_99"}


def test_a_promotion_is_served_by_the_next_request_and_warms_the_most_requested(registered) -> None:
    registry, artifacts, partitions, _ = registered
    serving = forecaster(registered, warm_up=2)
    for keys in (partitions[0], partitions[0], partitions[1]):
        serving.forecast("m3", keys, 3)
    before = serving.forecast("m3", partitions[0], 3).model
    path = artifacts.root / map_path("m3")
    original = path.read_bytes()
    production = load_map(artifacts.root, "m3")
    [again] = registry.register_many([_new_version_like(before, production.next_version(before.partition_id))])
    promoted = production.updated("run-2", [again], {before.partition_id: again})  # a re-training run's map
    path.write_text(promoted.to_json())
    try:
        assert serving.forecast("m3", partitions[0], 3).model.version == again.version  # no restart
        other = serving.production("m3", partitions[1])
        deadline = time.monotonic() + 10
        while (other.name, other.version) not in serving.cache._entries and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (other.name, other.version) in serving.cache._entries  # warmed in the background
    finally:
        path.write_bytes(original)


def test_the_map_is_revalidated_by_etag_at_most_every_refresh_interval(registered) -> None:
    _, artifacts, *_ = registered
    reads, clock = [], [0.0]

    class Counting(FolderMaps):
        def fetch(self, dataset, etag):
            fetched = super().fetch(dataset, etag)
            reads.append(fetched is not None)
            return fetched

    maps = ProductionMaps(Counting(artifacts.root), refresh_seconds=1.0, clock=lambda: clock[0])
    for _ in range(50):
        assert maps.get("m3") is not None
    assert reads == [True]  # one read for 50 lookups within the interval
    clock[0] = 1.5
    maps.get("m3")
    assert reads == [True, False]  # revalidated: unchanged, nothing re-parsed
    assert maps.get("no-such-dataset") is None


def _new_version_like(version, number):
    from forecast_job.registry import NewVersion

    return NewVersion(version.dataset, "run-2", version.keys, version.model_type, version.metrics, version.artifact,
                      version.baseline_artifact, last_timestamp=version.last_timestamp, freq=version.freq,
                      partition_id=version.partition_id, version=number)


# --- POST /api/forecast, as plain functions -----------------------------------------------------

def test_a_batch_answers_every_partition(registered) -> None:
    _, _, partitions, _ = registered
    answer = forecast_request(forecaster(registered), SETTINGS,
                              {"dataset": "m3", "partitions": partitions[:3], "horizon": 24})
    assert [item["keys"] for item in answer["forecasts"]] == partitions[:3]
    assert {len(item["forecast"]) for item in answer["forecasts"]} == {24}


@pytest.mark.parametrize(("body", "status", "code"), [
    ([], 400, "invalid_body"),
    ({"dataset": "m3", "keys": {"store": "x"}, "horizon": 3, "model": "best"}, 400, "invalid_body"),
    ({"keys": {"store": "x"}, "horizon": 3}, 400, "invalid_dataset"),
    ({"dataset": "M3 sales", "keys": {"store": "x"}, "horizon": 3}, 400, "invalid_dataset"),
    ({"dataset": "m3", "horizon": 3}, 400, "invalid_keys"),
    ({"dataset": "m3", "keys": {"store": "x"}, "partitions": [], "horizon": 3}, 400, "invalid_keys"),
    ({"dataset": "m3", "partitions": [], "horizon": 3}, 400, "invalid_keys"),
    ({"dataset": "m3", "keys": {"store": 12}, "horizon": 3}, 400, "invalid_keys"),
    ({"dataset": "m3", "keys": {}, "horizon": 3}, 400, "invalid_keys"),
    ({"dataset": "m3", "partitions": [{"store": "a"}] * 4, "horizon": 3}, 400, "invalid_keys"),
    ({"dataset": "m3", "keys": {"store": "x"}, "horizon": 0}, 400, "invalid_horizon"),
    ({"dataset": "m3", "keys": {"store": "x"}, "horizon": 25}, 400, "invalid_horizon"),
    ({"dataset": "m3", "keys": {"store": "x"}, "horizon": "6"}, 400, "invalid_horizon"),
    ({"dataset": "m3", "keys": {"store": "x"}, "horizon": True}, 400, "invalid_horizon"),
    ({"dataset": "m3", "keys": {"store": "N1"}, "horizon": 3, "levels": [80, 99.9]}, 400, "invalid_levels"),
    ({"dataset": "m3", "keys": {"store": "N1"}, "horizon": 3, "levels": [50]}, 400, "invalid_levels"),
    ({"dataset": "m3", "keys": {"store": "N1"}, "horizon": 3, "levels": ["high"]}, 400, "invalid_levels"),
    ({"dataset": "m3", "keys": {"store": "N1"}, "horizon": 3, "levels": [True]}, 400, "invalid_levels"),
    ({"dataset": "m3", "keys": {"store": "N1"}, "horizon": 3, "levels": [60, 70, 80, 90, 95, 98]}, 400,
     "invalid_levels"),
    ({"dataset": "m3", "keys": {"store": "N1"}, "horizon": 3, "levels": []}, 400, "invalid_levels"),
    ({"dataset": "m3", "keys": {"store": "N1"}, "horizon": 3, "levels": {"a": 1}}, 400, "invalid_levels"),
    ({"dataset": "m3", "keys": {"store": "nope"}, "horizon": 3}, 404, "partition_not_found"),
    ({"dataset": "other", "keys": {"store": "N1"}, "horizon": 3}, 404, "partition_not_found"),
])
def test_every_bad_request_is_answered_with_its_reason(registered, body, status, code) -> None:
    with pytest.raises(ApiError) as refused:
        forecast_request(forecaster(registered), SETTINGS, body)
    assert (refused.value.status, refused.value.code) == (status, code), refused.value.message
    if code == "invalid_levels":
        assert "`levels`" in refused.value.message


def test_the_parsed_request_keeps_keys_as_given() -> None:
    assert ForecastRequest.parse({"dataset": "m3", "keys": {"store": "N1", "brand": "b"}, "horizon": 2}, 24, 3) == (
        ForecastRequest("m3", [{"store": "N1", "brand": "b"}], 2))


def test_the_online_endpoint_script_serves_the_same_answers(registered, store, monkeypatch) -> None:
    """forecast_job/online.py (Azure ML managed online endpoint) over the same bundles and map, read
    from blob storage (Azurite here, the data account there): same forecast, same refusals (without
    Azure ML's inference server, a refusal is a dict with its status)."""
    import json

    from forecast_job import online

    _, artifacts, partitions, _ = registered
    store.upload_folder(store.settings.work_container, "models/", artifacts.root)
    monkeypatch.setenv("FORECAST_DATASTORE", "work")
    online.init(container=store.service.get_container_client(store.settings.work_container))
    body = {"dataset": "m3", "keys": partitions[0], "horizon": 4}
    assert online.run(json.dumps(body)) == forecast_request(forecaster(registered), SETTINGS, body)
    assert online.run("{")["status"] == 400
    refused = online.run(json.dumps({**body, "keys": {"store": "nope"}}))
    assert (refused["status"], refused["error"]["code"]) == (404, "partition_not_found")


def test_a_map_in_blob_storage_is_reread_only_when_its_etag_changed(registered, store) -> None:
    """ContainerMaps: a conditional GET (If-None-Match) of an unchanged map moves no bytes."""
    from forecast_job.production_map import ContainerMaps

    _, artifacts, *_ = registered
    store.upload_folder(store.settings.work_container, "models/", artifacts.root, [artifacts.root / map_path("m3")])
    maps = ContainerMaps(store.service.get_container_client(store.settings.work_container))
    etag, content = maps.fetch("m3", None)
    assert content == (artifacts.root / map_path("m3")).read_bytes()
    assert maps.fetch("m3", etag) is None
    store.write_bytes(store.settings.work_container, "models/" + map_path("m3"), content + b" ", "application/json")
    changed = maps.fetch("m3", etag)
    assert changed is not None and changed[0] != etag
    with pytest.raises(FileNotFoundError):
        maps.fetch("never-published", None)
