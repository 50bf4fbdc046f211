"""stitch: styled segments + original audio -> output/<name>.styled.mp4 and a before/after preview.

Stream copy only. The result is checked before it is published: frame count equal to the
source's, duration within one frame, audio bit-identical (md5 of its packets). The preview is
uploaded before the video, so a visible output always has its preview.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from restyle.storage import BlobStore
from restyle.tempfiles import scratch_dir
from scoring_job.preview import evenly_spaced, write_preview

from .media_ops import MediaError, audio_md5, concat_with_audio, frame_count, video_duration
from .segment_plan import SegmentPlan
from .work_layout import WorkLayout


def output_names(blob_name: str) -> tuple[str, str]:
    """`clips/Holiday.mov` -> (`clips/Holiday.styled.mp4`, `clips/Holiday.styled.preview.jpg`)."""
    base = str(PurePosixPath(blob_name).with_suffix(""))
    return f"{base}.styled.mp4", f"{base}.styled.preview.jpg"


def stitch_output(store: BlobStore, blob_name: str, job_id: str, video: dict, audio: dict) -> dict:
    settings = store.settings
    layout = WorkLayout(job_id)
    plan = SegmentPlan.from_dict(store.read_json(settings.work_container, layout.plan))
    video_name, preview_name = output_names(blob_name)
    with scratch_dir(settings.temp_root, "stitch-") as scratch:
        styled = [store.download_file(settings.work_container, layout.styled(seg.index), scratch / f"{seg.index}.mp4")
                  for seg in plan.segments]
        track = store.download_file(settings.work_container, audio["blob"], scratch / "audio.mka") \
            if audio.get("has_audio") else None
        result = scratch / "output.mp4"
        copied = concat_with_audio(styled, track, audio.get("codec"), result, scratch / "segments.txt")
        checks = _verify(result, video, audio if copied else {})
        preview = _preview(store, plan, layout, styled, scratch)
        store.upload_file(settings.output_container, preview_name, preview, content_type="image/jpeg")
        store.upload_file(settings.output_container, video_name, result, content_type="video/mp4",
                          metadata={"job_id": job_id, "source": _ascii(blob_name)})
    return {"output_blob": f"{settings.output_container}/{video_name}",
            "preview_blob": f"{settings.output_container}/{preview_name}", "audio_copied": copied, **checks}


def _verify(result: Path, video: dict, audio: dict) -> dict:
    frames, duration = frame_count(result), video_duration(result)
    if frames != video["frame_count"]:
        raise MediaError(f"stitched video has {frames} frames, the source has {video['frame_count']}")
    one_frame = 1 / _fps(video["fps"])
    if abs(duration - video["duration"]) > one_frame + 1e-6:
        raise MediaError(f"stitched video lasts {duration:.3f} s, the source {video['duration']:.3f} s")
    if audio.get("md5") and audio_md5(result) != audio["md5"]:
        raise MediaError("audio of the stitched video differs from the source's")
    return {"frames": frames, "duration": round(duration, 3)}


def _preview(store: BlobStore, plan: SegmentPlan, layout: WorkLayout, styled: list[Path], scratch: Path) -> Path:
    """Three frames across the video; the 'before' frames come from the source segments."""
    samples = []
    for frame in evenly_spaced(plan.total_frames):
        segment = next(s for s in plan.segments if s.start_frame <= frame < s.start_frame + s.frames)
        source = scratch / f"source_{segment.index}.mp4"
        if not source.exists():
            store.download_file(store.settings.work_container, layout.segment(segment.index), source)
        samples.append((source, styled[segment.index], frame - segment.start_frame))
    return write_preview(samples, scratch / "preview.jpg")


def _fps(text: str) -> float:
    numerator, _, denominator = text.partition("/")
    return float(numerator) / float(denominator or 1)


def _ascii(text: str) -> str:
    """Blob metadata values must be ASCII."""
    return text.encode("ascii", "backslashreplace").decode()
