"""The many-models Azure ML path, offline: the exact pipeline job we would submit (prepare, a parallel
job over buckets with partition keys, then publish), its code snapshot and its environment, the
workspace registrations publish makes and the online endpoint's deployment."""

from __future__ import annotations

import pytest

from forecast_job.azureml import AzureMLOptions, Upload, build_pipeline_job, code_snapshot, forecast_environment

WORK = "azureml://datastores/work/paths/R7"


UPLOAD = Upload("https://stdata.blob.core.windows.net/tables/sales 2024.csv", "0x8DC0FFEE", "csv", "sales",
                {"table": {"partition_columns": ["store", "brand"]},
                 "train": {"model_set": "fast", "gate": {"metric": "accuracy", "threshold": 0.8}}})


def test_the_pipeline_prepares_then_trains_buckets_in_parallel_then_publishes(tmp_path):
    options = AzureMLOptions(compute="cpu-cluster", environment="restyle-forecast@3", instance_count=4,
                             max_concurrency_per_instance=8, mini_batch_error_threshold=25, max_retries=3,
                             mini_batch_timeout_seconds=900)
    root = code_snapshot(tmp_path)
    job = build_pipeline_job(options, "R7", attempt=2, code_root=root, upload=UPLOAD)
    spec = job._to_dict()
    assert job.name == "restyle-mm-r7-a2" and spec["type"] == "pipeline"
    assert spec["experiment_name"] == "restyle-many-models" and spec["settings"] == {"default_compute":
                                                                                    "azureml:cpu-cluster"}
    assert spec["tags"] == {"restyle_run": "R7", "attempt": "2"}
    assert list(spec["jobs"]) == ["prepare", "train_partitions", "publish"]

    prepare = spec["jobs"]["prepare"]
    assert prepare["type"] == "command" and prepare["identity"] == {"type": "managed_identity"}
    assert prepare["outputs"] == {"prepared": {"mode": "rw_mount", "type": "uri_folder",
                                               "path": f"{WORK}/prepared/"}}
    assert prepare["component"]["command"] == (
        "python -m forecast_job.prepare --table-url 'https://stdata.blob.core.windows.net/tables/sales 2024.csv' "
        "--etag 0x8DC0FFEE --format csv --work ${{outputs.prepared}} --run-id R7 --dataset sales --options "
        """'{"table": {"partition_columns": ["store", "brand"]}, "train": {"model_set": "fast", "gate": """
        """{"metric": "accuracy", "threshold": 0.8}}}'""")  # the gate rule travels with the job

    train = spec["jobs"]["train_partitions"]
    assert train["type"] == "parallel" and train["partition_keys"] == ["bucket"]
    assert train["input_data"] == "${{inputs.partitions}}"
    assert train["resources"] == {"instance_count": 4} and train["max_concurrency_per_instance"] == 8
    assert (train["error_threshold"], train["mini_batch_error_threshold"]) == (-1, 25)
    assert train["retry_settings"] == {"timeout": 900, "max_retries": 3}
    assert train["task"] == {"type": "run_function", "code": str(root), "entry_script": "forecast_job/prs_entry.py",
                             "program_arguments": "--work ${{inputs.work}} --output ${{outputs.trained}}",
                             "environment": "azureml:restyle-forecast@3"}
    assert train["inputs"] == {"partitions": {"mode": "direct", "type": "mltable",
                                              "path": f"{WORK}/prepared/partitions/"},
                               "work": {"path": "${{parent.jobs.prepare.outputs.prepared}}"}}
    assert train["outputs"] == {"trained": {"mode": "rw_mount", "type": "uri_folder", "path": f"{WORK}/trained/"}}
    assert train["identity"] == {"type": "managed_identity"}

    publish = spec["jobs"]["publish"]
    assert publish["type"] == "command" and publish["identity"] == {"type": "managed_identity"}
    assert publish["inputs"] == {"work": {"path": "${{parent.jobs.prepare.outputs.prepared}}"},
                                 "trained": {"path": "${{parent.jobs.train_partitions.outputs.trained}}"}}
    assert publish["outputs"] == {
        "results": {"mode": "rw_mount", "type": "uri_folder", "path": f"{WORK}/results/"},
        "artifacts": {"mode": "rw_mount", "type": "uri_folder", "path": "azureml://datastores/work/paths/models/"},
    }
    assert publish["component"]["command"] == (
        "python -m forecast_job.publish --work ${{inputs.work}} --output ${{inputs.trained}} --registry aml: "
        "--artifacts ${{outputs.artifacts}} --artifact-uri azureml://datastores/work/paths/models "
        "--results ${{outputs.results}}")
    rest = job._to_rest_object()  # the REST body serializes offline too
    assert set(rest.properties.jobs) == {"prepare", "train_partitions", "publish"}
    assert rest.properties.jobs["train_partitions"]["partition_keys"] == '["bucket"]'


def test_the_code_snapshot_is_the_forecast_package_only(tmp_path):
    root = code_snapshot(tmp_path)
    assert [p.name for p in root.iterdir()] == ["forecast_job"]
    assert (root / "forecast_job" / "prs_entry.py").is_file() and (root / "forecast_job" / "requirements.txt").is_file()
    assert not list(root.rglob("__pycache__"))


def test_the_environment_installs_the_forecast_requirements_and_the_inference_server():
    env = forecast_environment()._to_dict()
    assert env["image"].startswith("mcr.microsoft.com/azureml/openmpi")
    pip = env["conda_file"]["dependencies"][-1]["pip"]
    assert "statsforecast==2.1.1" in pip and "mlflow-skinny==3.17.2" in pip
    assert any(p.startswith("azure-ai-ml") for p in pip) and any(p.startswith("azure-storage-blob") for p in pip)
    assert any(p.startswith("mltable") for p in pip) and any(p.startswith("azureml-inference-server-http")
                                                             for p in pip)
    assert not any(p.startswith("torch") for p in pip)


class FakeModels:
    """ml_client.models: create_or_update PUTs a version; a name+version that exists is refused, as the
    service refuses to change an existing version (azure-ai-ml _model_operations.py)."""

    def __init__(self) -> None:
        import threading

        self.created: dict[tuple[str, str], object] = {}
        self.calls = 0
        self._lock = threading.Lock()

    def create_or_update(self, model):
        from azure.core.exceptions import ResourceExistsError

        with self._lock:
            self.calls += 1
            if (model.name, model.version) in self.created:
                raise ResourceExistsError(f"{model.name}:{model.version} exists")
            self.created[(model.name, model.version)] = model
        return model


def test_publish_registers_custom_model_versions_in_the_workspace_in_parallel_with_their_numbers():
    from types import SimpleNamespace

    from forecast_job.aml_registry import WorkspaceRegistry
    from forecast_job.registry import NewVersion

    bundle = "azureml://datastores/work/paths/models/sales/R7/bucket=0003.bin"
    versions = [NewVersion("sales", "R7", {"store": str(n), "brand": "a"}, "Theta", {"mase": 0.8, "smape": 12.5},
                           f"{bundle}#bytes={n * 100}-{n * 100 + 99}", f"{bundle}#bytes=9000-9099",
                           last_timestamp="2024-06-30T00:00:00", freq="D", version=n + 1) for n in range(40)]
    models = FakeModels()
    registry = WorkspaceRegistry(SimpleNamespace(models=models), workers=8)
    registered = registry.register_many(versions)
    assert [(v.name, v.version) for v in registered] == [(v.name, v.version) for v in versions]
    spec = models.created[(versions[5].name, "6")]._to_dict()
    assert spec["type"] == "custom_model" and spec["path"] == bundle and spec["version"] == "6"
    assert spec["tags"]["key.store"] == "5" and spec["tags"]["key.brand"] == "a"
    assert spec["tags"]["metric.mase"] == "0.8" and spec["tags"]["artifact"] == f"{bundle}#bytes=500-599"
    assert spec["tags"]["run_id"] == "R7" and spec["tags"]["dataset"] == "sales"
    registry.register_many(versions)  # publish delivered again: the versions exist, nothing fails
    assert models.calls == 80 and len(models.created) == 40
    with pytest.raises(ValueError, match="needs the version number"):
        registry.register_many([NewVersion("sales", "R7", {"store": "x"}, "Theta", {}, bundle)])


def test_the_online_endpoint_reads_maps_and_bundles_with_its_own_identity(tmp_path):
    from forecast_job.aml_deployment import EndpointOptions, endpoint_specs

    identity = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-f"
    options = EndpointOptions(storage_account_url="https://stdata.blob.core.windows.net",
                              identity_resource_id=identity, identity_client_id="client-1")
    endpoint, deployment = endpoint_specs(options, code_snapshot(tmp_path))
    endpoint_spec, deployment_spec = endpoint._to_dict(), deployment._to_dict()
    assert endpoint_spec["name"] == "restyle-forecast" and endpoint_spec["auth_mode"] == "aml_token"
    assert endpoint_spec["identity"]["type"] == "user_assigned"
    assert endpoint_spec["identity"]["user_assigned_identities"][0]["resource_id"] == identity
    assert deployment_spec["code_configuration"] == {"code": str(tmp_path),
                                                     "scoring_script": "forecast_job/online_entry.py"}
    assert (tmp_path / "forecast_job" / "online_entry.py").is_file()
    assert "model" not in deployment_spec  # no model asset, no mount: the map names what to serve
    assert deployment_spec["environment_variables"] == {
        "FORECAST_STORAGE_ACCOUNT_URL": "https://stdata.blob.core.windows.net", "FORECAST_CONTAINER": "work",
        "FORECAST_DATASTORE": "work", "AZURE_CLIENT_ID": "client-1", "FORECAST_CACHE_BYTES": str(128 * 1024**2),
        "FORECAST_MAP_REFRESH_SECONDS": "1"}
    assert deployment_spec["instance_type"] == "Standard_DS3_v2" and deployment_spec["instance_count"] == 1
