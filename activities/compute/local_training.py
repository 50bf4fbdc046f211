"""The local backend's many-models run: what Azure ML's pipeline (parallel training step, then
publish) does, on this machine, with the same forecast_job entry points.

Downloads work/<job>/ (manifest, partitions, and the trained results of earlier attempts, so a
resubmitted run trains only the rest), trains under a process pool while uploading each finished
partition's folder (result.json last) to work/<job>/trained/, then publishes: registers into the
local registry (settings.registry_spec; artifacts under settings.models_root), runs the gate and
writes forecasts, metrics and the gate report, uploaded to work/<job>/results/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from forecast_job.azureml import TRAINED_FOLDER
from forecast_job.train import RESULT
from restyle.settings import get_settings
from restyle.storage import BlobStore

from ..work_layout import WorkLayout
from .uploading import wait_uploading

PARTITIONS_FAILED = 1  # forecast_job.train's exit code when some partitions failed: they are reported, not fatal


def upload_trained(store: BlobStore, job_id: str, output: Path, uploaded: dict[str, int]) -> None:
    """Each partition's folder whose result.json is new or rewritten (a failed partition of an earlier
    attempt is trained again), its result.json last (a visible result means done)."""
    prefix = WorkLayout(job_id).trained_prefix
    for result in sorted(output.glob(f"*/{RESULT}")):
        folder, written = result.parent, result.stat().st_mtime_ns
        if uploaded.get(folder.name) == written:
            continue
        artifacts = sorted(path for path in folder.iterdir() if path.is_file() and path.name != RESULT)
        store.upload_folder(store.settings.work_container, prefix, output, artifacts)
        store.upload_folder(store.settings.work_container, prefix, output, [result])
        uploaded[folder.name] = written


def run_training(job_id: str, state_dir: Path, workers: int) -> int:
    settings = get_settings()
    store = BlobStore.from_settings(settings)
    layout = WorkLayout(job_id)
    work, results = state_dir / "work", state_dir / "results"
    output = work / TRAINED_FOLDER  # where Azure ML's step writes it too
    store.download_folder(settings.work_container, layout.prefix, work)  # trained/ of earlier attempts too
    uploaded = {result.parent.name: result.stat().st_mtime_ns for result in output.glob(f"*/{RESULT}")}
    train = subprocess.Popen([sys.executable, "-m", "forecast_job.train", "--work", str(work),
                              "--output", str(output), "--workers", str(workers)])
    code = wait_uploading(train, lambda: upload_trained(store, job_id, output, uploaded))
    if code not in (0, PARTITIONS_FAILED):
        return code
    settings.models_root.mkdir(parents=True, exist_ok=True)
    published = subprocess.run([
        sys.executable, "-m", "forecast_job.publish", "--work", str(work), "--output", str(output),
        "--registry", settings.registry_spec, "--artifacts", str(settings.models_root / "artifacts"),
        "--results", str(results), "--gate-metric", settings.gate_metric,
        "--gate-threshold", f"{settings.gate_threshold:g}"], check=False)
    if published.returncode != 0:
        return published.returncode
    store.upload_folder(settings.work_container, layout.results_prefix, results)
    return 0
