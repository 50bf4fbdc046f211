"""The many-models Azure ML path, offline: the exact pipeline job we would submit (a parallel job
with partition keys, then the publish step), its code snapshot and its environment."""

from __future__ import annotations

from forecast_job.azureml import AzureMLOptions, build_pipeline_job, code_snapshot, forecast_environment

WORK = "azureml://datastores/work/paths/R7"


def test_the_pipeline_is_a_parallel_job_over_partitions_then_publish(tmp_path):
    options = AzureMLOptions(compute="cpu-cluster", environment="restyle-forecast@3", instance_count=4,
                             max_concurrency_per_instance=8, mini_batch_error_threshold=25, max_retries=3,
                             mini_batch_timeout_seconds=900, gate_metric="accuracy", gate_threshold=0.8)
    root = code_snapshot(tmp_path)
    job = build_pipeline_job(options, "R7", attempt=2, code_root=root)
    spec = job._to_dict()
    assert job.name == "restyle-mm-r7-a2" and spec["type"] == "pipeline"
    assert spec["experiment_name"] == "restyle-many-models" and spec["settings"] == {"default_compute":
                                                                                    "azureml:cpu-cluster"}
    assert spec["tags"] == {"restyle_run": "R7", "attempt": "2"}
    assert spec["inputs"] == {
        "work_folder": {"mode": "ro_mount", "type": "uri_folder", "path": f"{WORK}/"},
        "partitions": {"mode": "direct", "type": "mltable", "path": f"{WORK}/partitions/"},
    }
    assert list(spec["jobs"]) == ["train_partitions", "publish"]

    train = spec["jobs"]["train_partitions"]
    assert train["type"] == "parallel" and train["partition_keys"] == ["partition"]
    assert train["input_data"] == "${{inputs.partitions}}"
    assert train["resources"] == {"instance_count": 4} and train["max_concurrency_per_instance"] == 8
    assert (train["error_threshold"], train["mini_batch_error_threshold"]) == (-1, 25)
    assert train["retry_settings"] == {"timeout": 900, "max_retries": 3}
    assert train["task"] == {"type": "run_function", "code": str(root), "entry_script": "forecast_job/prs_entry.py",
                             "program_arguments": "--work ${{inputs.work}} --output ${{outputs.trained}}",
                             "environment": "azureml:restyle-forecast@3"}
    assert train["inputs"] == {"partitions": {"path": "${{parent.inputs.partitions}}"},
                               "work": {"path": "${{parent.inputs.work_folder}}"}}
    assert train["outputs"] == {"trained": {"mode": "rw_mount", "type": "uri_folder", "path": f"{WORK}/trained/"}}
    assert train["identity"] == {"type": "managed_identity"}

    publish = spec["jobs"]["publish"]
    assert publish["type"] == "command" and publish["identity"] == {"type": "managed_identity"}
    assert publish["inputs"] == {"work": {"path": "${{parent.inputs.work_folder}}"},
                                 "trained": {"path": "${{parent.jobs.train_partitions.outputs.trained}}"}}
    assert publish["outputs"] == {
        "results": {"mode": "rw_mount", "type": "uri_folder", "path": f"{WORK}/results/"},
        "artifacts": {"mode": "rw_mount", "type": "uri_folder", "path": "azureml://datastores/work/paths/models/"},
    }
    assert publish["component"]["command"] == (
        "python -m forecast_job.publish --work ${{inputs.work}} --output ${{inputs.trained}} --registry mlflow: "
        "--artifacts ${{outputs.artifacts}} --artifact-uri azureml://datastores/work/paths/models "
        "--results ${{outputs.results}} --gate-metric accuracy --gate-threshold 0.8")
    rest = job._to_rest_object()  # the REST body serializes offline too
    assert set(rest.properties.jobs) == {"train_partitions", "publish"}
    assert rest.properties.jobs["train_partitions"]["partition_keys"] == '["partition"]'


def test_the_code_snapshot_is_the_forecast_package_only(tmp_path):
    root = code_snapshot(tmp_path)
    assert [p.name for p in root.iterdir()] == ["forecast_job"]
    assert (root / "forecast_job" / "prs_entry.py").is_file() and (root / "forecast_job" / "requirements.txt").is_file()
    assert not list(root.rglob("__pycache__"))


def test_the_environment_installs_the_forecast_requirements_and_azure_mlflow():
    env = forecast_environment()._to_dict()
    assert env["image"].startswith("mcr.microsoft.com/azureml/openmpi")
    pip = env["conda_file"]["dependencies"][-1]["pip"]
    assert "statsforecast==2.1.1" in pip and "mlflow-skinny==3.17.2" in pip
    assert any(p.startswith("mltable") for p in pip) and any(p.startswith("azureml-mlflow") for p in pip)
    assert not any(p.startswith("torch") for p in pip)
