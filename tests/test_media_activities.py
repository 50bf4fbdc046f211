"""probe -> split -> (a trivial per-segment transform) -> stitch on real Azurite, ffmpeg and footage."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from stream_inventory import compare, inventory

from activities.cleanup import cleanup_work
from activities.media.keyframes import RandomAccess
from activities.media.media_ops import MediaError
from activities.media.probe_input import probe_input
from activities.media.segment_plan import SegmentPlan
from activities.media.split import split_unit
from activities.media.stitch import output_names, stitch_output
from activities.work_layout import WorkLayout
from restyle.storage import SourceChanged
from scoring_job.engine import DeviceConfig
from scoring_job.ffmpeg_binary import ffmpeg_binary
from scoring_job.manifest import Segment
from scoring_job.output_format import OutputFormat
from scoring_job.pipeline import stylize_segment
from scoring_job.probe import probe_video
from scoring_job.spanning import SpanningWriter
from scoring_job.video_io import EncodeOptions, output_size


class Negative:
    """A stand-in for the model: inverts colours, so the styled output is visibly different."""

    config = DeviceConfig(torch.device("cpu"), torch.float32, 4)
    device_name = "cpu:fp32"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return np.iinfo(frames.dtype).max - frames  # uint8, or uint16 for a 10-bit output


def run_job(store, source: Path, name: str, job_id: str = "job1", scale: float = 1.0, options: dict | None = None,
            transform=None, spanning: bool = False) -> tuple[dict, dict]:
    """The orchestrator's media steps, in order, with the transform (Negative unless named) in place of the
    scoring job; segments are encoded as the job's manifest says (probe's video_format), each on its own,
    or with `spanning` through one encoder cut into pieces as a scoring job's rank does."""
    settings = store.settings
    store.upload_file(settings.input_container, name, source)
    probed = probe_input(store, name, job_id, options={**({"scale": scale} if scale != 1 else {}), **(options or {})})
    assert probed["accepted"], probed
    video_format = OutputFormat(**probed["output"]["video_format"])
    splits = [split_unit(store, name, probed["etag"], job_id, first, last) for first, last in probed["units"]]
    assert sum(s["frames"] for s in splits) == probed["video"]["frame_count"]
    layout = WorkLayout(job_id)
    plan = SegmentPlan.from_dict(store.read_json(settings.work_container, layout.plan))
    scratch = settings.temp_root / "transform"
    style = partial(stylize_segment, stylizer=transform or Negative(), fps=probed["video"]["fps"], scale=scale,
                    output=video_format)
    if spanning:
        style_through_one_encoder(store, layout, plan, style, video_format, scratch)
    for segment in [] if spanning else plan.segments:
        local = store.download_file(settings.work_container, layout.segment(segment.index), scratch / "in.mkv")
        style(local, scratch / "out.mp4", expected_frames=segment.frames)
        store.upload_file(settings.work_container, layout.styled(segment.index), scratch / "out.mp4")
    stitched = stitch_output(store, name, probed["etag"], job_id)
    return probed, stitched


def style_through_one_encoder(store, layout: WorkLayout, plan: SegmentPlan, style, video_format: OutputFormat,
                              scratch: Path) -> None:
    """Every segment through one SpanningWriter, each piece uploaded with the record the scoring job writes."""
    container = store.settings.work_container
    sources = [store.download_file(container, layout.segment(s.index), scratch / f"in{s.index}.mkv")
               for s in plan.segments]
    segments = [Segment(index=s.index, path=f"in{s.index}.mkv", frames=s.frames) for s in plan.segments]
    size = output_size(probe_video(sources[0]), style.keywords["scale"])
    writer = SpanningWriter(scratch / "pieces", segments, size, style.keywords["fps"],
                            EncodeOptions(codec=video_format.encoder.name, reorder=False), video_format)
    for source, segment in zip(sources, segments, strict=True):
        style(source, None, expected_frames=segment.frames, sink=writer)
    writer.finish()
    for number, segment in enumerate(segments):
        store.upload_file(container, layout.styled(segment.index), writer.piece(number))
        store.write_json(container, layout.styled_result(segment.index),
                         {"frames": segment.frames, "encode_run": writer.run_id,
                          "continues": segments[number - 1].index if number else None})


def average_frame_rate(path: Path) -> Fraction:
    """What ffprobe prints as avg_frame_rate (libavformat's, from the track's sample durations)."""
    with av.open(str(path)) as container:
        return container.streams.video[0].average_rate


def fetch_output(store, name: str, folder: Path, extension: str = ".mp4") -> Path:
    video_name, preview_name = output_names(name, extension)
    store.download_file(store.settings.output_container, preview_name, folder / "preview.jpg")
    return store.download_file(store.settings.output_container, video_name, folder / f"out{extension}")


def test_bunny_round_trip_keeps_every_frame_and_stream(store, bunny, tmp_path):
    probed, stitched = run_job(store, bunny, "films/Big Buck Bünny.mp4")
    assert probed["video"]["frame_count"] == 132 and probed["segment_count"] >= 4
    assert stitched["frames"] == 132 and stitched["format"] == "mp4"
    assert [(s["type"], s["action"]) for s in stitched["streams"]] == [("video", "styled"), ("audio", "kept")]
    out = fetch_output(store, "films/Big Buck Bünny.mp4", tmp_path)
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count) == (1280, 720, 132)
    assert compare(inventory(bunny), inventory(out)) == []
    assert average_frame_rate(out) == average_frame_rate(bunny) == 25
    assert out.read_bytes()[4:8] == b"ftyp" and out.read_bytes()[36:40] == b"moov"  # faststart
    assert (tmp_path / "preview.jpg").stat().st_size > 10_000
    assert cleanup_work(store, "job1", succeeded=True)["removed"] > 0
    assert list(store.list_names(store.settings.work_container)) == []
    assert store.exists(store.settings.input_container, "films/Big Buck Bünny.mp4")  # the upload stays


def sync_samples(path: Path) -> tuple[list[int], list[int]]:
    """Frames the MP4 marks as sync samples, and frames whose bitstream is an IDR / IRAP picture."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        random_access = RandomAccess(stream.codec_context.name, bytes(stream.codec_context.extradata or b""))
        packets = [p for p in container.demux(stream) if p.size]
        return ([i for i, p in enumerate(packets) if p.is_keyframe],
                [i for i, p in enumerate(packets) if random_access(bytes(p))])


def test_segments_through_one_encoder_stitch_to_one_stream(store, bunny, tmp_path):
    """Pieces after the first start with a predicted frame: stitch joins them, flags only real keyframes,
    and takes preview frames from inside them."""
    probed, stitched = run_job(store, bunny, "one-encoder.mp4", spanning=True)
    assert stitched["frames"] == 132 and probed["segment_count"] >= 4
    out = fetch_output(store, "one-encoder.mp4", tmp_path)
    assert compare(inventory(bunny), inventory(out)) == []
    assert average_frame_rate(out) == 25 and probe_video(out).frame_count == 132
    flagged, real = sync_samples(out)
    assert flagged == real and len(real) < probed["segment_count"]  # no keyframe at the seams
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 132
    assert (tmp_path / "preview.jpg").stat().st_size > 10_000


def test_stitch_refuses_a_piece_whose_encode_run_was_replaced(store, bunny):
    probed, _ = run_job(store, bunny, "replaced.mp4", spanning=True)
    layout, container = WorkLayout("job1"), store.settings.work_container
    record = store.read_json(container, layout.styled_result(2))
    store.write_json(container, layout.styled_result(2), {**record, "encode_run": "another"})
    with pytest.raises(MediaError, match="styled segment 2 continues an encode of segment 1"):
        stitch_output(store, "replaced.mp4", probed["etag"], "job1")


EDGE_CASES = {
    "no audio": {"frames": 30, "audio": False},
    "odd size": {"frames": 20, "size": "161x97", "pix_fmt": "yuv444p"},
    "one frame": {"frames": 1, "audio": False},
    "sparse keyframes": {"frames": 90, "extra": ("-g", "1000")},
    "b-frames open gop": {"frames": 75, "extra": ("-g", "15", "-bf", "3", "-x264-params", "open-gop=1")},
    "closed gops": {"frames": 75, "extra": ("-g", "10", "-bf", "2")},
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_clips_round_trip_exactly(case, store, make_clip, tmp_path):
    source = make_clip(**EDGE_CASES[case])
    source_info = probe_video(source)
    probed, stitched = run_job(store, source, f"{case}.mp4")
    out = fetch_output(store, f"{case}.mp4", tmp_path)
    info = probe_video(out)
    assert (info.width, info.height) == (source_info.width, source_info.height)
    assert stitched["frames"] == info.frame_count == source_info.frame_count
    assert compare(inventory(source), inventory(out)) == []
    assert average_frame_rate(out) == average_frame_rate(source)
    if case == "sparse keyframes":
        assert probed["split_mode"] == "reencode" and probed["segment_count"] > 1
        assert probed["units"] == [[0, probed["segment_count"]]]  # one keyframe: one pass over the source
    if case == "closed gops":
        assert probed["split_mode"] == "copy" and probed["segment_count"] > 1
        assert len(probed["units"]) == probed["segment_count"]


def test_variable_frame_rate_keeps_every_frame_time(store, tmp_path):
    """VFR survives: every styled frame is shown at its source frame's time (the scoring job writes
    a constant rate; stitch gives the timestamps back)."""
    source = tmp_path / "vfr.mp4"
    subprocess.run([ffmpeg_binary(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=30",
                    "-vf", "setpts='if(lt(N,30),N/30,1+(N-30)/10)/TB'", "-frames:v", "60", "-fps_mode", "vfr",
                    "-c:v", "libx264", str(source)], check=True)
    _, stitched = run_job(store, source, "vfr.mp4")
    out = fetch_output(store, "vfr.mp4", tmp_path)
    assert stitched["frames"] == 60
    source_times, out_times = inventory(source).streams[0].frame_times, inventory(out).streams[0].frame_times
    assert max(abs(a - b) for a, b in zip(source_times, out_times, strict=True)) < 0.001
    assert compare(inventory(source), inventory(out)) == []
    assert average_frame_rate(out) == average_frame_rate(source)  # the last frame lasts what it lasted


def test_the_track_lasts_exactly_its_frames_when_segments_reorder_differently(store, bunny, tmp_path):
    """`make demo`'s case (360p): x264 gives the last segment a reorder delay of 1 frame, the others 2.
    Decode timestamps that followed each segment's own delay lost a frame at that seam and the MP4
    reported 3300/133 fps (24.8) for 132 frames in 5.28 s."""
    _, stitched = run_job(store, bunny, "bunny360.mp4", scale=0.5)
    out = fetch_output(store, "bunny360.mp4", tmp_path)
    assert stitched["frames"] == 132
    assert average_frame_rate(out) == 25
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.duration * stream.time_base == Fraction(132, 25)
        durations = {packet.duration for packet in container.demux(stream) if packet.size}
        assert durations == {1 / stream.time_base / 25}  # PyAV 18: a closed container's streams raise


def test_a_re_upload_during_the_job_fails_it_with_the_reason(store, make_clip):
    """Every read of the source is pinned to the ETag probe saw: a new upload under the same name
    (which gets its own job) never mixes into this one."""
    source = make_clip(frames=48, extra=("-g", "12"))
    store.upload_file(store.settings.input_container, "clip.mp4", source)
    probed = probe_input(store, "clip.mp4", "job1")
    store.upload_file(store.settings.input_container, "clip.mp4", make_clip(frames=30))
    first, last = probed["units"][0]
    with pytest.raises(SourceChanged, match="was replaced after the job started"):
        split_unit(store, "clip.mp4", probed["etag"], "job1", first, last)


def test_work_is_kept_after_a_failure(store):
    store.write_json(store.settings.work_container, "jobX/plan.json", {"mode": "copy", "segments": []})
    assert cleanup_work(store, "jobX", succeeded=False) == {"removed": 0, "kept": True}
    assert store.read_json(store.settings.work_container, "jobX/plan.json")["mode"] == "copy"


def test_a_canceled_jobs_work_is_removed_even_where_failures_keep_theirs(store):
    for n in range(3):
        store.write_json(store.settings.work_container, f"jobY/segments/{n}.json", {})
    assert cleanup_work(store, "jobY", succeeded=False, remove=True) == {"removed": 3, "kept": False}
    assert list(store.list_names(store.settings.work_container, "jobY/")) == []
