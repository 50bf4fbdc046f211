"""The video pipeline's hand-off to the scoring job and back: the manifest it reads, and what its
results say (devices, per-job choices: `precision: fast`, the quality target's CRF) for the job's result."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from restyle.storage import BlobStore
from scoring_job.manifest import Manifest, ScoringOptions, Segment
from scoring_job.output_format import OutputFormat
from scoring_job.style_spec import ImageStyle, parse_style

from ..work_layout import WorkLayout, segment_path
from .segment_plan import SegmentPlan


def write_manifest(store: BlobStore, job_id: str, video: dict, style: str, options: dict, split_frames: int) -> dict:
    """work/<job>/manifest.json from the plan; refuses when the split lost or gained frames."""
    settings = store.settings
    layout = WorkLayout(job_id)
    document = store.read_json(settings.work_container, layout.plan)
    plan = SegmentPlan.from_dict(document)
    if not plan.total_frames == split_frames == video["frame_count"]:
        raise ValueError(f"frame counts disagree: plan {plan.total_frames}, split {split_frames}, "
                         f"video {video['frame_count']}")
    segments = [Segment(index=s.index, path=segment_path(s.index), frames=s.frames)
                for s in plan.segments]
    if isinstance(parse_style(style), ImageStyle):  # the painting travels with the job's inputs
        name = f"style/{PurePosixPath(style).name}"
        store.copy(settings.styles_container, style, settings.work_container, layout.inside(name))
        style = name
    video_format = OutputFormat(**document.get("output", {}).get("video_format", {}))  # decided by probe
    manifest = Manifest(job_id=job_id, fps=video["fps"], style=style, options=ScoringOptions(**options),
                        video_format=video_format, segments=segments)
    store.write_json(settings.work_container, layout.manifest, manifest.model_dump(mode="json"))
    return {"segments_total": len(segments), "frames_total": manifest.total_frames}


def scoring_results(store: BlobStore, job_id: str) -> list[dict]:
    """The scoring job's result JSON of every finished segment (frames, seconds, fps, device)."""
    layout = WorkLayout(job_id)
    return [store.read_json(store.settings.work_container, name)
            for name in store.list_names(store.settings.work_container, layout.styled_prefix) if name.endswith(".json")]


CHOICE_KEYS = ("precision_choice", "quality_choice")  # per-job choices each segment result records


def gpu_seconds(results: list[dict]) -> float:
    """Rank (GPU) seconds the finished segments took: what a job has used of the GPUs."""
    return sum(float(result.get("seconds") or 0) for result in results)


def scoring_summary(results: list[dict]) -> dict:
    """What the job's result says of its scoring: the devices it ran on and each distinct per-job
    choice the ranks made with its measurements (`precision: fast`'s precision, the quality
    target's CRF, VMAF and bitrate): one entry when the ranks agreed."""
    summary: dict = {"devices": sorted({result["device"] for result in results if result.get("device")})}
    for key in CHOICE_KEYS:
        choices = {json.dumps(result[key], sort_keys=True): result[key]
                   for result in results if isinstance(result.get(key), dict)}
        if choices:
            summary[key] = list(choices.values())
    return summary
