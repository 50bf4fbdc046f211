"""Azure ML backend: the scoring job as an MPI command job on a GPU cluster, and the many-models
run as a pipeline job (a parallel training step over the partitions, then publish) on a CPU cluster.

Scoring: instance_count nodes x processes_per_instance processes (one per GPU); inputs and outputs
are datastore folders over the work container: segments read-only mounted, results read-write
mounted, so a resubmitted attempt sees the segments an earlier attempt finished and skips them;
a shared compile cache is mounted read-write too, so no node compiles what another already has.
Many models: forecast_job.azureml.build_pipeline_job, over the same work container, resumable the
same way (a partition with a trained result is skipped).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

from azure.ai.ml import Input, MpiDistribution, Output, command
from azure.ai.ml.entities import Command, ManagedIdentityConfiguration
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from forecast_job import azureml as forecast_azureml
from restyle.storage import BlobStore

from ..work_layout import STYLED_FOLDER, WorkLayout
from .backend import JobKind, JobState, JobStatus, observe

SCORING_PACKAGE = Path(__file__).resolve().parents[2] / "scoring_job"
COMPILE_CACHE = "_compile-cache"  # folder of the work container, beside the jobs' folders

# Every Azure ML job status, mapped to ours. Failed may be a pre-emption (see _failure_state).
AZUREML_STATES: dict[str, JobState] = {
    "NotStarted": JobState.QUEUED,
    "Starting": JobState.QUEUED,
    "Provisioning": JobState.QUEUED,
    "Preparing": JobState.QUEUED,
    "Queued": JobState.QUEUED,
    "Running": JobState.RUNNING,
    "Finalizing": JobState.RUNNING,
    "CancelRequested": JobState.CANCELING,
    "Completed": JobState.COMPLETED,
    "Failed": JobState.FAILED,
    "Canceled": JobState.CANCELED,
    "NotResponding": JobState.FAILED,
    "Paused": JobState.FAILED,
}


def code_snapshot(root: Path) -> Path:
    """A folder holding only the scoring_job package: Azure ML uploads it as the job's code."""
    target = root / "scoring_job"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(SCORING_PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.partial"))
    return root


def azureml_job_name(job_id: str, attempt: int, kind: JobKind = JobKind.STYLIZE) -> str:
    if kind is JobKind.MANY_MODELS:
        return forecast_azureml.azureml_job_name(job_id, attempt)
    return f"restyle-{job_id}-a{attempt}".lower()


def build_job(settings, kind: JobKind, job_id: str, attempt: int, scratch: Path, table: dict | None = None):
    """The Azure ML job of this kind for one attempt, its code snapshot written under `scratch`;
    a many-models run's `table` is the upload the app validated (work/<job>/table.json)."""
    if kind is JobKind.MANY_MODELS:
        return forecast_azureml.build_pipeline_job(forecast_options(settings), job_id, attempt,
                                                   forecast_azureml.code_snapshot(scratch), upload_of(settings, table))
    return build_scoring_job(settings, job_id, attempt, code_snapshot(scratch))


def upload_of(settings, table: dict) -> forecast_azureml.Upload:
    """Where the prepare step reads the upload: its blob URL on the data account, pinned to its ETag."""
    account = (settings.storage_account_url or "").rstrip("/")
    return forecast_azureml.Upload(f"{account}/{settings.tables_container}/{quote(table['blob'])}", table["etag"],
                                   table["format"], table["dataset"], table["options"])


def forecast_options(settings) -> forecast_azureml.AzureMLOptions:
    return forecast_azureml.AzureMLOptions(
        compute=settings.aml_forecast_compute, environment=settings.aml_forecast_environment,
        datastore=settings.aml_datastore, experiment=f"{settings.aml_experiment}-many-models",
        instance_count=settings.aml_forecast_instance_count,
        max_concurrency_per_instance=settings.aml_forecast_processes_per_instance)


def build_scoring_job(settings, job_id: str, attempt: int, code_root: Path) -> Command:
    datastore = f"azureml://datastores/{settings.aml_datastore}/paths/{job_id}"
    return command(
        name=azureml_job_name(job_id, attempt),
        display_name=f"restyle {job_id} attempt {attempt}",
        experiment_name=settings.aml_experiment,
        description="Neural style transfer of a video's segments (scoring_job.score)",
        tags={"restyle_job": job_id, "attempt": str(attempt)},
        code=str(code_root),
        command="python -m scoring_job.score --input ${{inputs.work}} --output ${{outputs.styled}} "
                "--compile-cache ${{outputs.compile_cache}}",
        inputs={"work": Input(type="uri_folder", path=f"{datastore}/", mode="ro_mount")},
        outputs={"styled": Output(type="uri_folder", path=f"{datastore}/{STYLED_FOLDER}/", mode="rw_mount"),
                 # compiled code and timings every node of every job reuses (scoring_job/compile_cache.py)
                 "compile_cache": Output(type="uri_folder", mode="rw_mount",
                                         path=f"azureml://datastores/{settings.aml_datastore}/paths/{COMPILE_CACHE}/")},
        environment=settings.aml_environment,
        compute=settings.aml_compute,
        instance_count=settings.aml_instance_count,
        distribution=MpiDistribution(process_count_per_instance=settings.aml_processes_per_instance),
        identity=ManagedIdentityConfiguration(),
        shm_size="8g",
    )


def _failure_state(job) -> tuple[JobState, str]:
    """Low-priority pre-emption surfaces as Failed; its marks are in the job's error/properties."""
    text = " ".join(str(part) for part in (getattr(job, "error", None), getattr(job, "properties", None)) if part)
    if "preempt" in text.lower():
        return JobState.PREEMPTED, "the cluster node was pre-empted"
    return JobState.FAILED, f"Azure ML job {job.name} failed (see its logs in the workspace)"


class AzureMLBackend:
    def __init__(self, ml_client, store: BlobStore) -> None:
        self.ml_client = ml_client
        self.store = store

    @classmethod
    def from_settings(cls, store: BlobStore) -> AzureMLBackend:
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential

        s = store.settings
        client = MLClient(DefaultAzureCredential(), s.aml_subscription_id, s.aml_resource_group, s.aml_workspace)
        return cls(client, store)

    def submit(self, job_id: str, units_total: int, attempt: int, kind: JobKind = JobKind.STYLIZE,
               events_url: str | None = None) -> dict:
        """Get-or-create the attempt's job (its end is found by polling: `events_url` is not used).
        Durable runs an activity at least once (a host restart
        redelivers it; a retry follows an error raised after the PUT went through), and Azure ML
        refuses a second create of a name, so an attempt that exists already is the one to watch."""
        name = azureml_job_name(job_id, attempt, kind)
        if self._find(name) is None:
            try:
                table = (self.store.read_json(self.store.settings.work_container, WorkLayout(job_id).table)
                         if kind is JobKind.MANY_MODELS else None)
                with tempfile.TemporaryDirectory(prefix="aml-code-", dir=self._scratch()) as folder:
                    self.ml_client.jobs.create_or_update(
                        build_job(self.store.settings, kind, job_id, attempt, Path(folder), table))
            except HttpResponseError:  # ResourceExistsError included: a concurrent delivery won
                if self._find(name) is None:
                    raise
        return {"backend": "azureml", "kind": kind.value, "name": name, "job_id": job_id, "attempt": attempt,
                "units_total": units_total}

    def _find(self, name: str):
        try:
            return self.ml_client.jobs.get(name)
        except ResourceNotFoundError:
            return None

    def status(self, handle: dict) -> JobStatus:
        job = self.ml_client.jobs.get(handle["name"])
        state = AZUREML_STATES.get(job.status)
        message = f"Azure ML status {job.status}"
        if state is None:
            state, message = JobState.QUEUED, f"unknown Azure ML status {job.status!r}, treated as queued"
        elif state is JobState.FAILED:
            state, message = _failure_state(job) if job.status == "Failed" else (state, message)
        done, total, unit, refused = observe(self.store, handle)
        if refused is not None:  # the prepare step refused the table (and failed the pipeline): done, no resubmission
            return JobStatus(JobState.COMPLETED, done, total, f"table refused: {refused}", unit)
        return JobStatus(state, done, total, message, unit)

    def cancel(self, handle: dict) -> None:
        self.ml_client.jobs.begin_cancel(handle["name"])

    def cancel_job(self, job_id: str) -> int:
        """Job names are derived from (job id, attempt, kind), so every attempt can be found by name."""
        canceled = 0
        attempts = range(1, self.store.settings.compute_max_attempts + 1)
        for name in (azureml_job_name(job_id, attempt, kind) for kind in JobKind for attempt in attempts):
            job = self._find(name)
            if job is None:
                continue
            if not AZUREML_STATES.get(job.status, JobState.QUEUED).terminal and job.status != "CancelRequested":
                self.ml_client.jobs.begin_cancel(name)
                canceled += 1
        return canceled

    def _scratch(self) -> Path:
        root = self.store.settings.temp_root
        root.mkdir(parents=True, exist_ok=True)
        return root


def scoring_environment():
    """The environment registered as settings.aml_environment (by the deployment hook)."""
    from azure.ai.ml.entities import Environment

    from scoring_job.environment import BASE_IMAGE, NAME, conda_specification

    return Environment(name=NAME, image=BASE_IMAGE, conda_file=conda_specification(),
                       description="Restyle scoring job: torch (CUDA), onnx weights reader, ffmpeg via imageio-ffmpeg")
