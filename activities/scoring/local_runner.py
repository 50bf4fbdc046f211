"""The local backend's detached job: what Azure ML's mounts and mpirun do, on this machine.

    python -m activities.scoring.local_runner --job-id ID --kind stylize|many_models --state-dir DIR --processes N

stylize: downloads work/<job>/ (manifest, segments, and any styled results of earlier attempts),
runs the scoring job's ranks (activities.scoring.ranks), uploads each finished segment (video, then its result JSON) to
work/<job>/styled/ as soon as it appears. many_models: activities.many_models.local_run. Either
way the exit code goes to DIR/exit_code.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path

from restyle.settings import get_settings
from restyle.storage import BlobStore
from scoring_job.files import write_text_atomic
from scoring_job.manifest import MANIFEST_NAME, Manifest
from scoring_job.style_spec import ImageStyle, parse_style

from ..work_layout import WorkLayout
from .backend import COMPUTE_CHANGED, JobKind
from .ranks import RankGroup, world_size

UPLOAD_POLL_SECONDS = 0.5


def fetch_inputs(store: BlobStore, job_id: str, input_dir: Path, output_dir: Path) -> Manifest:
    container = store.settings.work_container
    layout = WorkLayout(job_id)
    store.download_file(container, layout.manifest, input_dir / MANIFEST_NAME)
    manifest = Manifest.load(input_dir)
    paths = [segment.path for segment in manifest.segments]
    if isinstance(parse_style(manifest.style), ImageStyle):
        paths.append(manifest.style)
    for path in paths:
        store.download_file(container, layout.inside(path), input_dir / path)
    for name in store.list_names(container, layout.styled_prefix):  # resume: what earlier attempts finished
        store.download_file(container, name, output_dir / Path(name).name)
    return manifest


def upload_finished(store: BlobStore, job_id: str, output_dir: Path, uploaded: set[str]) -> None:
    """Upload each complete result pair once: the video first, so a visible JSON means done."""
    for result in sorted(output_dir.glob("segment_*.json")):
        if result.name in uploaded:
            continue
        video = result.with_suffix(".mp4")
        prefix = WorkLayout(job_id).styled_prefix
        store.upload_file(store.settings.work_container, prefix + video.name, video, content_type="video/mp4")
        store.upload_file(store.settings.work_container, prefix + result.name, result,
                          content_type="application/json")
        uploaded.add(result.name)


def run(job_id: str, state_dir: Path, processes: int) -> int:
    store = BlobStore.from_settings(get_settings())
    input_dir, output_dir = state_dir / "input", state_dir / "output"
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest = fetch_inputs(store, job_id, input_dir, output_dir)
    uploaded = {p.name for p in output_dir.glob("segment_*.json")}  # came from the store already
    world = world_size(manifest, output_dir, processes)
    ranks = RankGroup(input_dir, output_dir, world, store.settings.temp_root / "compile-cache")
    return wait_uploading(ranks, lambda: upload_finished(store, job_id, output_dir, uploaded))


def wait_uploading(process: subprocess.Popen | RankGroup, upload: Callable[[], None]) -> int:
    """Wait for the job's process(es), calling `upload` every half second meanwhile and once after it ends,
    so finished units reach storage (and progress) while the job runs; returns its exit code."""
    stop = threading.Event()

    def uploader() -> None:
        while not stop.wait(UPLOAD_POLL_SECONDS):
            try:
                upload()
            except Exception as error:  # noqa: BLE001 - a storage outage outlasting the SDK's retries: try again
                print(f"upload failed, will retry: {type(error).__name__}: {error}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=uploader, daemon=True)
    thread.start()
    code = process.wait()
    stop.set()
    thread.join()
    upload()
    return code


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--kind", choices=[kind.value for kind in JobKind], default=JobKind.STYLIZE.value)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--events-url", help="the orchestration's sendEventPostUri: told when the job has ended")
    args = parser.parse_args()
    try:
        if args.kind == JobKind.MANY_MODELS:
            from ..many_models.local_run import run_many_models

            code = run_many_models(args.job_id, args.state_dir, args.processes)
        else:
            code = run(args.job_id, args.state_dir, args.processes)
    except Exception as error:
        write_text_atomic(args.state_dir / "exit_code", json.dumps({"code": 1, "error": str(error)}))
        report_end(args.events_url, 1)
        raise
    write_text_atomic(args.state_dir / "exit_code", json.dumps({"code": code}))
    report_end(args.events_url, code)
    return code


def report_end(events_url: str | None, code: int) -> None:
    """Raise COMPUTE_CHANGED on the orchestration (after exit_code exists, which its next status
    poll reads). Best effort: if the host cannot be reached, the poll finds the end anyway."""
    if not events_url:
        return
    url = events_url.replace("{eventName}", COMPUTE_CHANGED)
    request = urllib.request.Request(url, data=json.dumps({"exit_code": code}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except (OSError, ValueError) as error:
        print(f"could not report the job's end to the orchestration ({error}); its poll will find it",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
