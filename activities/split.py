"""split: cut one range of planned segments (keyframe-aligned stream copy, or exact re-encode)."""

from __future__ import annotations

from pathlib import Path

from restyle.storage import BlobStore
from restyle.tempfiles import scratch_dir
from scoring_job.probe import probe_video

from .media_ops import MediaError, copy_segments, frame_count, reencode_segment
from .segment_plan import SegmentPlan
from .work_layout import WorkLayout


def split_range(store: BlobStore, blob_name: str, job_id: str, first: int, last: int) -> dict:
    """Segments [first, last) of the plan into work/<job>/segments/; frame counts checked."""
    settings = store.settings
    layout = WorkLayout(job_id)
    plan = SegmentPlan.from_dict(store.read_json(settings.work_container, layout.plan))
    with scratch_dir(settings.temp_root, "split-") as scratch:
        source = store.download_file(settings.input_container, blob_name, scratch / "source")
        targets = [(segment, scratch / f"{segment.index}.mp4") for segment in plan.segments[first:last]]
        if plan.mode == "copy":
            copy_segments(source, targets)
        else:
            frame_seconds = float(1 / probe_video(source).fps)
            for segment, local in targets:
                reencode_segment(source, local, segment, frame_seconds)
        total = 0
        for segment, local in targets:
            _check_frames(local, segment.frames, segment.index)
            store.upload_file(settings.work_container, layout.segment(segment.index), local, content_type="video/mp4")
            local.unlink()
            total += segment.frames
    return {"first": first, "last": last, "frames": total, "mode": plan.mode}


def _check_frames(path: Path, expected: int, index: int) -> None:
    got = frame_count(path)
    if got != expected:
        raise MediaError(f"segment {index} has {got} frames, the plan says {expected}")
