"""probe: read an upload's facts, enforce the limits, and plan its segments, or reject it."""

from __future__ import annotations

from dataclasses import asdict, replace

import av

from restyle.blob_names import UnsafeBlobName, safe_blob_name
from restyle.blob_reader import BlobReader
from restyle.settings import Settings
from restyle.storage import BlobStore
from scoring_job.output_format import choose_output
from scoring_job.probe import ProbeError, VideoInfo, probe_file

from ..rejection import reject_upload
from ..work_layout import WorkLayout
from .job_inputs import JobInputProblem, check_options, check_style
from .segment_plan import SegmentPlan, plan_segments, split_units, target_segment_seconds, with_extras
from .source_index import READ_BUFFER, SourceIndex, read_index


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


def probe_input(store: BlobStore, blob_name: str, job_id: str, style: str | None = None,
                options: dict | None = None, max_bytes: int | None = None) -> dict:
    """Facts, a segment plan (work/<job>/plan.json) and an output plan, or the rejection record.

    `style` and `options`, when given, are checked too: a job that could not use them is rejected
    up front rather than failing after the split; so is an upload larger than `max_bytes`, the size its
    upload ticket named. Only the container's header and index are read (for MP4, the `moov` and the
    first frame): the video itself is never downloaded here.
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
    if max_bytes is not None and blob.size > max_bytes:
        return reject_upload(store, name, f"the upload is {blob.size} bytes, more than the {max_bytes} bytes its "
                                          "upload ticket allowed")
    if blob.size > settings.max_bytes:
        return reject_upload(store, name, f"file is {blob.size} bytes; the limit is {settings.max_bytes}")
    try:
        info = probe_file(BlobReader(store, settings.input_container, name, blob.etag), name, READ_BUFFER,
                          count_frames=False)
        index = read_index(store, settings.input_container, name, blob.etag)
        output = index.output
        info = replace(info, frame_count=len(index.video))
        _check_index(index)
    except ProbeError as error:
        return reject_upload(store, name, str(error))
    except av.FFmpegError as error:
        return reject_upload(store, name, f"not a readable video (corrupt or unsupported): {name}: {error}")
    facts = video_facts(info)
    problem = limit_problem(info, settings)
    if problem:
        return reject_upload(store, name, problem, facts)
    output = output.with_video_format(choose_output(facts, options.get("codec", "source"), options.get("scale", 1.0)))
    target = target_segment_seconds(info.duration, settings.segment_seconds, settings.scoring_workers,
                                    settings.segments_per_worker)
    plan = plan_segments(index.video, float(index.video_time_base), target, info.duration)
    plan = with_extras(plan, index.video_time_base,
                       [(s.index, s.time_base, s.times) for s in index.others.values()])
    _check_total(plan, info)
    layout = WorkLayout(job_id)
    store.write_json(settings.work_container, layout.plan, {**plan.as_dict(), "output": output.as_dict()})
    store.write_json(settings.work_container, layout.frame_times, frame_times(index, info), indent=None)
    return {
        "accepted": True,
        "blob": name,
        "etag": blob.etag,
        "style": style,
        "options": options,
        "video": facts,
        "split_mode": plan.mode,
        "segment_count": len(plan.segments),
        "units": split_units(plan, index.video),
        "output": {"format": output.format, "extension": output.extension,
                   "video_format": output.video_format.model_dump(mode="json")},
    }


def _check_index(index: SourceIndex) -> None:
    if not index.video:
        raise ProbeError("video stream holds no frames")
    for stream in index.others.values():
        if stream.untimed:
            raise ProbeError(f"stream {stream.index} has {stream.untimed} packets without timestamps; they could "
                             "not be kept in sync with the styled video")


def frame_times(index: SourceIndex, info: VideoInfo) -> dict:
    """Presentation timestamps of every frame, in order, and where the last frame ends: stitch gives
    these back to the styled frames, so variable frame rates, start offsets and the track's duration
    survive exactly. The last frame lasts what the container says, else the interval before it."""
    pts = sorted(packet.pts for packet in index.video)
    tb = index.video_time_base
    last = index.video_end if index.video_end and index.video_end > pts[-1] else \
        pts[-1] + (pts[-1] - pts[-2] if len(pts) > 1 else round(1 / (info.fps * tb)))
    return {"time_base": [tb.numerator, tb.denominator], "pts": pts, "end": max(last, pts[-1] + 1)}


def _check_total(plan: SegmentPlan, info: VideoInfo) -> None:
    if plan.total_frames != info.frame_count:
        raise ValueError(f"segment plan covers {plan.total_frames} frames, the video has {info.frame_count}")
