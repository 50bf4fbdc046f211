"""probe: read an upload's facts, enforce the limits, and plan its segments, or reject it."""

from __future__ import annotations

import itertools
from dataclasses import asdict

from restyle.blob_names import UnsafeBlobName, safe_blob_name
from restyle.settings import Settings
from restyle.storage import BlobStore
from restyle.tempfiles import scratch_dir
from scoring_job.probe import ProbeError, VideoInfo, probe_video

from .job_inputs import JobInputProblem, check_options, check_style
from .media_ops import video_packets
from .rejection import reject_upload
from .segment_plan import SegmentPlan, plan_segments, target_segment_seconds
from .work_layout import WorkLayout


def video_facts(info: VideoInfo) -> dict:
    facts = asdict(info)
    facts["fps"] = info.fps_text
    return facts


def limit_problem(info: VideoInfo, settings: Settings) -> str | None:
    if info.duration > settings.max_duration_seconds:
        return f"video is {info.duration:.0f} s long; the limit is {settings.max_duration_seconds:.0f} s"
    if info.width * info.height > settings.max_pixels:
        return f"frames of {info.width}x{info.height} exceed the limit of {settings.max_pixels} pixels"
    return None


def split_ranges(segment_count: int, parallelism: int) -> list[list[int]]:
    """Contiguous [first, last) segment ranges, one per split activity, as even as possible."""
    ranges = min(segment_count, parallelism)
    edges = [round(k * segment_count / ranges) for k in range(ranges + 1)]
    return [[a, b] for a, b in itertools.pairwise(edges)]


def probe_input(store: BlobStore, blob_name: str, job_id: str, style: str | None = None,
                options: dict | None = None) -> dict:
    """Facts and a segment plan (saved as work/<job>/plan.json), or the rejection record.

    `style` and `options`, when given, are checked too: a job that could not use them is rejected
    up front rather than failing after the split.
    """
    settings = store.settings
    try:
        name = safe_blob_name(blob_name)
    except UnsafeBlobName as error:
        return reject_upload(store, blob_name, str(error))
    blob = store.info(settings.input_container, name)
    try:
        style = None if style is None else check_style(store, style)
        options = check_options(options or {})
    except JobInputProblem as error:
        return reject_upload(store, name, str(error))
    if blob.size == 0:
        return reject_upload(store, name, "empty file (0 bytes)")
    if blob.size > settings.max_bytes:
        return reject_upload(store, name, f"file is {blob.size} bytes; the limit is {settings.max_bytes}")
    with scratch_dir(settings.temp_root, "probe-") as scratch:
        local = store.download_file(settings.input_container, name, scratch / "source")
        try:
            info = probe_video(local)
        except ProbeError as error:
            return reject_upload(store, name, str(error).replace(str(local), name))
        facts = video_facts(info)
        problem = limit_problem(info, settings)
        if problem:
            return reject_upload(store, name, problem, facts)
        packets, time_base = video_packets(local)
    target = target_segment_seconds(info.duration, settings.segment_seconds, settings.scoring_workers,
                                    settings.segments_per_worker)
    plan = plan_segments(packets, time_base, target, info.duration)
    _check_total(plan, info)
    store.write_json(settings.work_container, WorkLayout(job_id).plan, plan.as_dict())
    return {
        "accepted": True,
        "blob": name,
        "etag": blob.etag,
        "style": style,
        "options": options,
        "video": facts,
        "split_mode": plan.mode,
        "segment_count": len(plan.segments),
        "ranges": split_ranges(len(plan.segments), settings.split_parallelism),
    }


def _check_total(plan: SegmentPlan, info: VideoInfo) -> None:
    if plan.total_frames != info.frame_count:
        raise ValueError(f"segment plan covers {plan.total_frames} frames, the video has {info.frame_count}")
