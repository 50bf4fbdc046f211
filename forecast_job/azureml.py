"""The Azure ML path: the many-models run as a pipeline job of three steps over the work datastore.

1. `prepare`: a command job (`python -m forecast_job.prepare`) that reads the upload from the data
   account with the cluster's identity, pinned to the ETag the app validated, and streams it into
   <work>/prepared (bucket files, manifest, rejections, prepare.json): the app itself never reads
   the table (Azure ML's own many-models example prepares its partitioned dataset the same way, in
   a step before the parallel one).
2. `train`: a parallel job (run_function task, entry `forecast_job/prs_entry.py`) over the MLTable
   in <work>/prepared/partitions with `partition_keys=["bucket"]`: one mini-batch per bucket of
   partitions, spread over `instance_count` nodes x `max_concurrency_per_instance` processes.
   Results go to <work>/trained, one bundle and one partitions file per bucket.
   - `error_threshold=-1`: it counts failed *items*, and for a tabular mini-batch an item is a row
     that run() returns no result for; run() returns partition ids, not one per row (Azure ML's own
     many-models example sets -1 for the same reason). Failures are counted per mini-batch instead:
   - `mini_batch_error_threshold`: how many buckets may fail before the job fails;
   - `retry_settings`: a failed mini-batch (run() raised) is retried `max_retries` times, and a
     resubmitted job skips buckets whose partitions all trained.
3. `publish`: a command job (`python -m forecast_job.publish --registry aml:`) that registers the
   versions as the workspace's model assets (aml_registry.py, in parallel), runs the gate against
   the production map, writes the map and the bundles to <datastore>/models/ (shared by every run,
   so a champion from an earlier run stays readable) and forecasts, metrics, history and the gate
   report to <work>/results.

A prepare step that refuses the table exits 3 after writing its reason to prepare.json, which fails
the pipeline; the app's status poll reads prepare.json first (activities/compute/backend.py) and
reports the run finished with a refused table, which collect_results turns into a rejection of
the upload, so a refused table is never resubmitted. Parallel jobs run only as pipeline
steps (Azure ML docs, "Use parallel jobs in pipelines"), hence the pipeline. azure-ai-ml is
imported when a spec is built, so the rest of the package never needs it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .manifest import BUCKET_KEY, PARTITIONS_FOLDER

PACKAGE = Path(__file__).resolve().parent
ENTRY_SCRIPT = "forecast_job/prs_entry.py"
PREPARED_FOLDER = "prepared"
TRAINED_FOLDER = "trained"
RESULTS_FOLDER = "results"
MODELS_FOLDER = "models"  # bundles models/<dataset>/<run id>/bucket=NNNN.bin and models/<dataset>/production.json


@dataclass(frozen=True)
class AzureMLOptions:
    compute: str = "cpu-cluster"
    environment: str = "restyle-forecast@latest"
    datastore: str = "work"  # datastore over the data account's work container
    experiment: str = "restyle-many-models"
    instance_count: int = 1
    max_concurrency_per_instance: int = 4  # processes per node (one per core)
    mini_batch_error_threshold: int = 10  # failed partitions tolerated before the job fails
    max_retries: int = 2  # retries of a failed partition (mini-batch)
    mini_batch_timeout_seconds: int = 600  # one partition's run() call


def code_snapshot(root: Path) -> Path:
    """A folder holding only the forecast_job package: Azure ML uploads it as the steps' code."""
    target = Path(root) / "forecast_job"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.partial"))
    return Path(root)


def azureml_job_name(run_id: str, attempt: int) -> str:
    return f"restyle-mm-{run_id}-a{attempt}".lower()


@dataclass(frozen=True)
class Upload:
    """The table a run prepares: its blob URL (the cluster reads it with its identity) and ETag."""

    url: str
    etag: str
    format: str
    dataset: str
    options: dict


def build_pipeline_job(options: AzureMLOptions, run_id: str, attempt: int, code_root: Path, upload: Upload):
    """The pipeline job to submit for one run (one attempt) whose work folder is <datastore>/<run_id>/."""
    import json
    import shlex

    from azure.ai.ml import Input, Output, command, dsl
    from azure.ai.ml.entities import ManagedIdentityConfiguration, RetrySettings
    from azure.ai.ml.parallel import RunFunction, parallel_run_function

    work = f"azureml://datastores/{options.datastore}/paths/{run_id}"
    models = f"azureml://datastores/{options.datastore}/paths/{MODELS_FOLDER}"  # shared by every run
    prepare_component = command(
        name="prepare",
        display_name="stream the table into bucket files",
        code=str(code_root),
        command=(f"python -m forecast_job.prepare --table-url {shlex.quote(upload.url)} "
                 f"--etag {shlex.quote(upload.etag)} --format {upload.format} --work ${{{{outputs.prepared}}}} "
                 f"--run-id {run_id} --dataset {upload.dataset} --options {shlex.quote(json.dumps(upload.options))}"),
        outputs={"prepared": Output(type="uri_folder", mode="rw_mount")},
        environment=options.environment,
        identity=ManagedIdentityConfiguration(),
    )
    train_component = parallel_run_function(
        name="train_partitions",
        display_name="train one model per partition, a bucket at a time",
        inputs={"partitions": Input(type="mltable", mode="direct"), "work": Input(type="uri_folder", mode="ro_mount")},
        outputs={"trained": Output(type="uri_folder", mode="rw_mount")},
        input_data="${{inputs.partitions}}",
        partition_keys=[BUCKET_KEY],
        instance_count=options.instance_count,
        max_concurrency_per_instance=options.max_concurrency_per_instance,
        error_threshold=-1,
        mini_batch_error_threshold=options.mini_batch_error_threshold,
        retry_settings=RetrySettings(max_retries=options.max_retries,
                                     timeout=options.mini_batch_timeout_seconds),
        logging_level="INFO",
        task=RunFunction(code=str(code_root), entry_script=ENTRY_SCRIPT, environment=options.environment,
                         program_arguments="--work ${{inputs.work}} --output ${{outputs.trained}}"),
        identity=ManagedIdentityConfiguration(),
    )
    publish_component = command(
        name="publish",
        display_name="register, gate and forecast",
        code=str(code_root),
        command=("python -m forecast_job.publish --work ${{inputs.work}} --output ${{inputs.trained}} "
                 "--registry aml: --artifacts ${{outputs.artifacts}} "
                 f"--artifact-uri {models} --results ${{{{outputs.results}}}}"),
        inputs={"work": Input(type="uri_folder", mode="ro_mount"),
                "trained": Input(type="uri_folder", mode="ro_mount")},
        outputs={"results": Output(type="uri_folder", mode="rw_mount"),
                 "artifacts": Output(type="uri_folder", mode="rw_mount")},
        environment=options.environment,
        identity=ManagedIdentityConfiguration(),
    )

    @dsl.pipeline(name=azureml_job_name(run_id, attempt), display_name=f"many models {run_id} attempt {attempt}",
                  experiment_name=options.experiment,
                  description="Prepare, train, register, gate and forecast per partition",
                  tags={"restyle_run": run_id, "attempt": str(attempt)}, default_compute=options.compute)
    def many_models():
        prepare = prepare_component()
        prepare.outputs.prepared = Output(type="uri_folder", mode="rw_mount", path=f"{work}/{PREPARED_FOLDER}/")
        train = train_component(partitions=Input(type="mltable", mode="direct",
                                                 path=f"{work}/{PREPARED_FOLDER}/{PARTITIONS_FOLDER}/"),
                                work=prepare.outputs.prepared)
        train.outputs.trained = Output(type="uri_folder", mode="rw_mount", path=f"{work}/{TRAINED_FOLDER}/")
        publish = publish_component(work=prepare.outputs.prepared, trained=train.outputs.trained)
        publish.outputs.results = Output(type="uri_folder", mode="rw_mount", path=f"{work}/{RESULTS_FOLDER}/")
        publish.outputs.artifacts = Output(type="uri_folder", mode="rw_mount", path=f"{models}/")

    job = many_models()
    job.name = azureml_job_name(run_id, attempt)  # get-or-create by name, as the scoring backend does
    return job


def forecast_environment():
    """The environment registered as AzureMLOptions.environment (by the deployment hook)."""
    from azure.ai.ml.entities import Environment

    from .environment import BASE_IMAGE, NAME, conda_specification

    return Environment(name=NAME, image=BASE_IMAGE, conda_file=conda_specification(),
                       description="Restyle many models: statsforecast, pyarrow, mltable, MLflow for Azure ML")
