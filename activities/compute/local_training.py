"""The local backend's many-models run: what Azure ML's pipeline (prepare, parallel training step,
publish) does, on this machine, with the same forecast_job entry points.

1. prepare: the upload is downloaded (pinned to the ETag the app validated; the compute side's
   disk, not the Function App's) and streamed into bucket files (forecast_job.prepare). Its summary
   goes to work/<job>/prepared/prepare.json (the app reads the partition count, or the refusal of
   the table, there); the bucket files stay local. A resubmitted attempt reuses the prepared folder.
2. train: a process pool over the buckets, uploading each bucket's bundle and partitions file (that
   last) to work/<job>/trained/ as it finishes, so progress is visible and a resubmitted attempt
   trains only the buckets that have no result.
3. publish: registers into the local registry (settings.registry_spec), runs the gate against the
   dataset's production map and writes the new map, the run's model bundles, forecasts, metrics,
   history and the gate report, all uploaded: the models to the work container's `models/` (where
   the app serves them from, as in Azure), the tables to work/<job>/results/.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

from forecast_job.azureml import MODELS_FOLDER, TRAINED_FOLDER
from forecast_job.manifest import MANIFEST_NAME, PARTITIONS_FILE, PREPARED
from forecast_job.prepare import REJECTED_EXIT
from forecast_job.production_map import map_path
from restyle.settings import get_settings
from restyle.storage import BlobNotFound, BlobStore

from ..work_layout import WorkLayout
from .uploading import wait_uploading

PARTITIONS_FAILED = 1  # forecast_job.train's exit code when some partitions failed: they are reported, not fatal


def upload_trained(store: BlobStore, job_id: str, output: Path, uploaded: dict[str, int]) -> None:
    """Each bucket whose partitions file is new or rewritten (a bucket with a failure is trained
    again), its bundle first (a visible partitions file means the bucket is done)."""
    prefix = WorkLayout(job_id).trained_prefix
    for result in sorted(path for path in output.glob("*/partitions-*.json") if PARTITIONS_FILE.match(path.name)):
        folder, written = result.parent, result.stat().st_mtime_ns
        if uploaded.get(folder.name) == written:
            continue
        others = sorted(path for path in folder.iterdir() if path.is_file() and path != result)
        store.upload_folder(store.settings.work_container, prefix, output, others)
        store.upload_folder(store.settings.work_container, prefix, output, [result])
        uploaded[folder.name] = written


def prepare_upload(store: BlobStore, job_id: str, table: dict, work: Path, scratch: Path) -> int:
    """Run the prepare step unless an earlier attempt on this machine did; its summary (or refusal)
    is uploaded. Returns the step's exit code (REJECTED_EXIT: the table was refused)."""
    settings, layout = store.settings, WorkLayout(job_id)
    if not (work / MANIFEST_NAME).exists():
        upload = scratch / f"upload.{table['format']}"
        store.download_file(settings.tables_container, table["blob"], upload, etag=table["etag"])
        options = json.dumps(table["options"])
        code = subprocess.run([sys.executable, "-m", "forecast_job.prepare", "--table", str(upload),
                               "--format", table["format"], "--work", str(work), "--run-id", job_id,
                               "--dataset", table["dataset"], "--options", options], check=False).returncode
        upload.unlink(missing_ok=True)
        if code not in (0, REJECTED_EXIT):
            return code
    store.upload_file(settings.work_container, layout.prepared, work / PREPARED, content_type="application/json")
    return 0 if (work / MANIFEST_NAME).exists() else REJECTED_EXIT


def fetch_map(store: BlobStore, dataset: str, models: Path) -> None:
    """The dataset's current production map, where publish reads the champions."""
    with contextlib.suppress(BlobNotFound):  # a first run: no champions
        store.download_file(store.settings.work_container, f"{MODELS_FOLDER}/{map_path(dataset)}",
                            models / map_path(dataset))


def run_training(job_id: str, state_dir: Path, workers: int) -> int:
    settings = get_settings()
    store = BlobStore.from_settings(settings)
    layout = WorkLayout(job_id)
    table = store.read_json(settings.work_container, layout.table)
    work = state_dir.parent / "prepared"  # shared by the job's attempts on this machine
    output, results, models = work / TRAINED_FOLDER, state_dir / "results", state_dir / "models"
    work.mkdir(parents=True, exist_ok=True)
    code = prepare_upload(store, job_id, table, work, state_dir)
    if code == REJECTED_EXIT:
        return 0  # done: the app rejects the upload with prepare.json's reason
    if code:
        return code
    store.download_folder(settings.work_container, layout.trained_prefix, output)  # earlier attempts' buckets
    uploaded = {path.parent.name: path.stat().st_mtime_ns for path in output.glob("*/partitions-*.json")}
    train = subprocess.Popen([sys.executable, "-m", "forecast_job.train", "--work", str(work),
                              "--output", str(output), "--workers", str(workers)])
    code = wait_uploading(train, lambda: upload_trained(store, job_id, output, uploaded))
    if code not in (0, PARTITIONS_FAILED):
        return code
    fetch_map(store, table["dataset"], models)
    settings.models_root.mkdir(parents=True, exist_ok=True)
    published = subprocess.run([
        sys.executable, "-m", "forecast_job.publish", "--work", str(work), "--output", str(output),
        "--registry", settings.registry_spec, "--artifacts", str(models),
        "--artifact-uri", f"azureml://datastores/{settings.aml_datastore}/paths/{MODELS_FOLDER}",
        "--results", str(results)], check=False)
    if published.returncode != 0:
        return published.returncode
    store.upload_folder(settings.work_container, f"{MODELS_FOLDER}/", models,
                        sorted(path for path in models.rglob("*.bin")))
    store.upload_folder(settings.work_container, f"{MODELS_FOLDER}/", models, [models / map_path(table["dataset"])])
    store.upload_folder(settings.work_container, layout.results_prefix, results)
    return 0
