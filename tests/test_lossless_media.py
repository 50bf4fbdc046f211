"""Every stream of an upload survives probe -> split -> (styling) -> stitch, on real Azurite and ffmpeg.

Clips come from tests/media_clips.py (offset audio, two audio codecs, text and bitmap subtitles,
chapters, VFR with gaps, attachments, PCM, and the containers people upload); the output is
compared stream by stream with the source by tests/stream_inventory.py: packet md5s, packet
times relative to the first frame (A/V sync) within 1 ms, per-frame timestamps, chapters,
attachments, titles and languages.
"""

from __future__ import annotations

import pytest
from media_clips import CONTAINER_KINDS, EDGE_KINDS, NOT_VIDEO_KINDS
from stream_inventory import compare, inventory, split_conversions
from test_media_activities import fetch_output, run_job

from activities.media.probe_input import probe_input

# Containers whose clocks do not start at zero (their times are compared from the first frame).
SHIFTED_CLOCKS = {"container_ts", "container_m2ts", "container_mts", "container_mpg", "container_flv",
                  "container_wmv"}
# What the output may convert, by kind: each must be listed in the job result as converted.
ALLOWED_CONVERSIONS: dict[str, set[str]] = {}


@pytest.mark.parametrize("kind", EDGE_KINDS + CONTAINER_KINDS)
def test_every_stream_and_timestamp_survives(kind, store, media_clip, tmp_path):
    source = media_clip(kind)
    name = f"uploads/{source.name}"
    probed, stitched = run_job(store, source, name)
    output = fetch_output(store, name, tmp_path, probed["output"]["extension"])
    # Matroska cannot store negative timestamps (AAC priming): ffmpeg shifts the whole file by the
    # priming, so there the frame times are compared from the first frame (sync stays exact).
    absolute = kind not in SHIFTED_CLOCKS and probed["output"]["format"] == "mp4"
    problems, conversions = split_conversions(compare(inventory(source), inventory(output), absolute=absolute))
    assert problems == []
    listed = {s["codec"] for s in stitched["streams"] if s["action"] == "converted"}
    assert len(conversions) == len(listed), (conversions, stitched["streams"])
    assert all(s["action"] != "not kept" for s in stitched["streams"]), stitched["streams"]
    assert output.suffix == (".mp4" if probed["output"]["format"] == "mp4" else ".mkv")


@pytest.mark.parametrize("kind", NOT_VIDEO_KINDS)
def test_anything_else_is_rejected_with_its_reason(kind, store, media_clip):
    """Detection is by content: a PNG named .ts, random bytes named .mts, text named .mpg, audio alone."""
    source = media_clip(kind)
    name = f"uploads/{source.name}"
    store.upload_file(store.settings.input_container, name, source)
    probed = probe_input(store, name, "job1")
    assert not probed["accepted"]
    reasons = {"not_video_m4a": "audio only", "not_video_png_ts": "still image",
               "not_video_random_mts": "not a readable video", "not_video_text_mpg": "not a readable video"}
    assert reasons[kind] in probed["reason"]
    record = store.read_json(store.settings.rejected_container, f"{name}.reason.json")
    assert record["reason"] == probed["reason"]
    assert store.exists(store.settings.rejected_container, name)
    assert not store.exists(store.settings.input_container, name)


def test_container_clips_need_no_known_extension(store, media_clip):
    """A video under a name with no extension at all is still a video."""
    source = media_clip("container_ts")
    store.upload_file(store.settings.input_container, "camera/CLIP0001", source)
    assert probe_input(store, "camera/CLIP0001", "job1")["accepted"]
