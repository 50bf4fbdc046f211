"""The three-stage segment pipeline on real ffmpeg: counts, rates, sizes, audio and failures."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import numpy as np
import pytest
import torch

from scoring_job.engine import DeviceConfig, Stylizer
from scoring_job.ffmpeg_binary import ffmpeg_binary
from scoring_job.pipeline import SegmentError, stylize_segment
from scoring_job.probe import ProbeError, probe_video
from scoring_job.style_spec import parse_style


@pytest.fixture(scope="module")
def stylizer() -> Stylizer:
    return Stylizer(parse_style("19"), DeviceConfig(torch.device("cpu"), torch.float32, 4))


def audio_md5(path) -> str:
    return subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy", "-f", "md5", "-"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def no_leftovers(folder) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".partial")]


def test_frame_count_rate_and_size_are_kept(make_clip, stylizer, tmp_path):
    source = make_clip(frames=37, size="160x96", fps="24")  # 37: not a multiple of the batch
    seen = []
    result = stylize_segment(source, tmp_path / "out.mp4", stylizer, on_frames=seen.append)
    out = probe_video(tmp_path / "out.mp4")
    assert (result.frames, out.frame_count, sum(seen)) == (37, 37, 37)
    assert out.fps == Fraction(24) and (out.width, out.height) == (160, 96)
    assert out.pix_fmt == "yuv420p" and not out.has_audio
    assert no_leftovers(tmp_path)


def test_audio_is_copied_bit_for_bit(make_clip, stylizer, tmp_path):
    source = make_clip(frames=30, fps="25", audio=True)
    stylize_segment(source, tmp_path / "out.mp4", stylizer, copy_audio=True)
    out = probe_video(tmp_path / "out.mp4")
    assert out.has_audio and out.audio_codec == "aac"
    assert audio_md5(tmp_path / "out.mp4") == audio_md5(source)


def test_ntsc_rate_is_kept_exactly(make_clip, stylizer, tmp_path):
    source = make_clip(frames=20, fps="30000/1001", audio=False)
    stylize_segment(source, tmp_path / "out.mp4", stylizer)
    assert probe_video(tmp_path / "out.mp4").fps == Fraction(30000, 1001)


def test_odd_size_keeps_resolution_with_full_chroma(make_clip, stylizer, tmp_path):
    source = make_clip(frames=12, size="161x97", audio=False, pix_fmt="yuv444p")
    stylize_segment(source, tmp_path / "out.mp4", stylizer)
    out = probe_video(tmp_path / "out.mp4")
    assert (out.width, out.height, out.frame_count) == (161, 97, 12)
    assert out.pix_fmt == "yuv444p"


def test_rotation_metadata_is_applied(make_clip, stylizer, tmp_path):
    plain = make_clip(frames=10, size="160x96", audio=False)
    rotated = tmp_path / "rotated.mp4"
    subprocess.run([ffmpeg_binary(), "-v", "error", "-display_rotation", "90", "-i", str(plain), "-c", "copy",
                    str(rotated)], check=True)
    assert probe_video(rotated).rotation == 90
    stylize_segment(rotated, tmp_path / "out.mp4", stylizer)
    out = probe_video(tmp_path / "out.mp4")
    assert (out.width, out.height, out.rotation) == (96, 160, 0)  # upright, as a player shows it


def test_scale_halves_the_size(make_clip, stylizer, tmp_path):
    result = stylize_segment(make_clip(frames=8, size="320x180", audio=False), tmp_path / "o.mp4", stylizer, scale=0.5)
    assert (result.width, result.height) == (160, 90)


def test_frame_count_mismatch_with_the_manifest_fails(make_clip, stylizer, tmp_path):
    with pytest.raises(SegmentError, match="decoded 24 frames, expected 25"):
        stylize_segment(make_clip(frames=24), tmp_path / "out.mp4", stylizer, expected_frames=25)
    assert list(tmp_path.iterdir()) == []


def test_truncated_video_is_rejected(make_clip, stylizer, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(make_clip(frames=48).read_bytes()[:3000])
    with pytest.raises(ProbeError, match="corrupt"):
        stylize_segment(broken, tmp_path / "out.mp4", stylizer)
    assert not (tmp_path / "out.mp4").exists() and no_leftovers(tmp_path)


def test_a_failing_model_tears_everything_down(make_clip, tmp_path):
    class Exploding:
        config = DeviceConfig(torch.device("cpu"), torch.float32, 2)
        device_name = "cpu:fp32"
        calls = 0

        def __call__(self, frames: np.ndarray) -> np.ndarray:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("out of memory")
            return frames

    with pytest.raises(RuntimeError, match="out of memory"):
        stylize_segment(make_clip(frames=40), tmp_path / "out.mp4", Exploding())
    assert list(tmp_path.iterdir()) == []


def test_too_small_frames_are_refused(make_clip, stylizer, tmp_path):
    with pytest.raises(SegmentError, match="too small"):
        stylize_segment(make_clip(frames=4, size="24x12", audio=False), tmp_path / "o.mp4", stylizer)
