"""The local backend's scoring job (the video pipeline's kind): the Azure ML job's mounts, on this machine.

Downloads work/<job>/ (manifest, segments, the style painting, and any styled results of earlier
attempts), runs the scoring job's ranks (ranks.py), and uploads each finished segment (video,
then its result JSON) to work/<job>/styled/ as soon as it appears.
"""

from __future__ import annotations

from pathlib import Path

from restyle.settings import get_settings
from restyle.storage import BlobStore
from scoring_job.manifest import MANIFEST_NAME, Manifest
from scoring_job.style_spec import ImageStyle, parse_style

from ..work_layout import WorkLayout
from .ranks import RankGroup, world_size
from .uploading import wait_uploading


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


def run_scoring(job_id: str, state_dir: Path, processes: int) -> int:
    store = BlobStore.from_settings(get_settings())
    input_dir, output_dir = state_dir / "input", state_dir / "output"
    output_dir.mkdir(parents=True, exist_ok=True)
    manifest = fetch_inputs(store, job_id, input_dir, output_dir)
    uploaded = {p.name for p in output_dir.glob("segment_*.json")}  # came from the store already
    world = world_size(manifest, output_dir, processes)
    ranks = RankGroup(input_dir, output_dir, world, store.settings.temp_root / "compile-cache")
    return wait_uploading(ranks, lambda: upload_finished(store, job_id, output_dir, uploaded))
