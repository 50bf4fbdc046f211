"""The model registry: the SQLite index and MLflow's registry (a real local SQLite store) answer
the same lookups: by tags (partition keys), by version, by the production alias."""

from __future__ import annotations

import subprocess
import sys

import pytest

from forecast_job.mlflow_registry import MlflowRegistry, workspace_tracking_uri
from forecast_job.naming import model_name, partition_id
from forecast_job.registry import (
    BlobArtifacts,
    FolderArtifacts,
    IndexRegistry,
    ModelNotFound,
    NewVersion,
    find_production,
    key_tags,
)


@pytest.fixture(params=["index", "mlflow"])
def registry(request, tmp_path):
    if request.param == "index":
        return IndexRegistry(tmp_path / "index.sqlite")
    return MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}")


def version(store: str, brand: str, run: str, mase: float, **extra) -> NewVersion:
    return NewVersion("retail", run, {"store": store, "brand": brand}, "AutoETS", {"mase": mase, "smape": 10.0},
                      f"file:///models/{store}-{brand}-{run}.pkl", f"file:///models/{store}-{brand}-{run}.base.pkl",
                      last_timestamp="2024-01-01T00:00:00", freq="MS", **extra)


def test_versions_tags_and_the_production_alias(registry):
    first = registry.register_many([version("1", "a", "r1", 0.8), version("1", "b", "r1", 0.9),
                                    version("2", "a", "r1", 1.2)])
    name = model_name("retail", partition_id({"store": "1", "brand": "a"}))
    assert [v.version for v in first] == [1, 1, 1] and first[0].name == name
    second = registry.register_many([version("1", "a", "r2", 0.7)])[0]
    assert second.version == 2 and [v.version for v in registry.versions(name)] == [1, 2]
    got = registry.get(name, 1)
    assert (got.run_id, got.keys, got.metrics["mase"], got.model_type) == ("r1", {"store": "1", "brand": "a"}, 0.8,
                                                                           "AutoETS")
    assert (got.last_timestamp, got.freq, got.flagged) == ("2024-01-01T00:00:00", "MS", False)
    with pytest.raises(ModelNotFound):
        registry.get(name, 9)

    assert registry.by_alias(name) is None
    registry.set_aliases([(name, 1)])
    assert registry.by_alias(name).version == 1
    registry.set_aliases([(name, 2)])  # moving the alias
    assert registry.by_alias(name).version == 2 and registry.by_alias(name).aliases == ("production",)
    assert find_production(registry, "retail", {"brand": "a", "store": "1"}).run_id == "r2"
    with pytest.raises(ModelNotFound, match="no production model"):
        find_production(registry, "retail", {"store": "2", "brand": "a"})

    store_one = registry.search({"dataset": "retail", **key_tags({"store": "1"})})
    assert sorted((v.keys["brand"], v.version) for v in store_one) == [("a", 1), ("a", 2), ("b", 1)]
    assert [v.version for v in registry.search(key_tags({"store": "1"}), alias="production")] == [2]
    assert [v.keys for v in registry.search({"run_id": "r1", "model_type": "AutoETS", **key_tags({"store": "2"})})] == [
        {"store": "2", "brand": "a"}]


def test_a_short_history_keeps_its_observations_and_reason(registry):
    short = version("7", "a", "r1", 0.0, flagged=True, observations=13, short_history="13 observations, fewer ...")
    [registered] = registry.register_many([short, version("8", "a", "r1", 0.8, observations=120)])[:1]
    got = registry.get(registered.name, registered.version)
    assert (got.flagged, got.observations, got.short_history) == (True, 13, "13 observations, fewer ...")
    other = registry.search(key_tags({"store": "8"}))[0]
    assert (other.observations, other.short_history) == (120, "")


def test_an_index_written_before_short_histories_gets_their_columns(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    IndexRegistry(path).close()
    with sqlite3.connect(path) as db:  # the first schema, without the two later columns
        db.execute("ALTER TABLE versions DROP COLUMN observations")
        db.execute("ALTER TABLE versions DROP COLUMN short_history")
        db.execute("INSERT INTO versions VALUES ('retail-p1', 1, 'retail', 'p1', 'r0', 'Theta', '{}', '{}', "
                   "'file:///m', '', 0, '', 'MS', 0)")
    reopened = IndexRegistry(path)
    old = reopened.get("retail-p1", 1)
    assert (old.model_type, old.observations, old.short_history) == ("Theta", 0, "")
    assert reopened.register_many([version("1", "a", "r1", 0.8, observations=50)])[0].observations == 50


def test_registering_a_run_twice_adds_nothing(registry):
    once = registry.register_many([version("1", "a", "r1", 0.8)])
    again = registry.register_many([version("1", "a", "r1", 0.8)])
    assert [(v.name, v.version) for v in again] == [(v.name, v.version) for v in once]
    flagged = registry.register_many([version("1", "a", "r1", 0.8, flagged=True)])[0]
    assert flagged.version == 2 and flagged.flagged  # the run's fallback is a version of its own


def test_folder_artifacts_round_trip_with_and_without_a_datastore_prefix(tmp_path):
    plain = FolderArtifacts(tmp_path / "a")
    uri = plain.put("m3/p1/r1/model.pkl", b"model")
    assert uri.startswith("file://") and plain.get(uri) == b"model"
    mounted = FolderArtifacts(tmp_path / "b", "azureml://datastores/work/paths/models")
    uri = mounted.put("m3/p1/r1/model.pkl", b"x")
    assert uri == "azureml://datastores/work/paths/models/m3/p1/r1/model.pkl" and mounted.get(uri) == b"x"


def test_blob_artifacts_round_trip_on_azurite(store):
    container = store.service.get_container_client(store.settings.work_container)
    artifacts = BlobArtifacts(container, prefix="models")
    uri = artifacts.put("m3/p1/r1/model.pkl", b"pickled")
    assert uri.endswith(f"/{container.container_name}/models/m3/p1/r1/model.pkl")
    assert artifacts.get(uri) == b"pickled"


def test_the_workspace_tracking_uri_comes_from_the_workspace():
    class Workspaces:
        def get(self, name):
            assert name == "ws"
            return type("Workspace", (), {"mlflow_tracking_uri": "azureml://westeurope.api.azureml.ms/mlflow/v1.0/x"})

    client = type("Client", (), {"workspaces": Workspaces()})()
    assert workspace_tracking_uri(client, "ws") == "azureml://westeurope.api.azureml.ms/mlflow/v1.0/x"


def test_the_function_app_can_import_the_lookup_side_without_statsforecast_pandas_or_mlflow():
    code = ("import sys, forecast_job.registry, forecast_job.gate, forecast_job.manifest, forecast_job.options, "
            "forecast_job.levels, "
            "forecast_job.azureml; print(sorted(m for m in ('statsforecast', 'pandas', 'mlflow', 'azure.ai.ml') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
