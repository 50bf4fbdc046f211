"""The standalone CLI: the real clip end to end, and one-line errors with distinct exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import run_ffmpeg
from PIL import Image
from test_pipeline import audio_md5

from scoring_job.probe import probe_video
from scoring_job.stylize import EXIT_CODES, main


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scoring_job.stylize", *args], capture_output=True, text=True)


def test_bundled_clip_full_resolution_with_audio(bunny, tmp_path):
    """The 'done when' of the engine: 1280x720, 132 frames out, audio bit-identical, preview written."""
    out = tmp_path / "bunny.styled.mp4"
    done = cli(str(bunny), "-o", str(out), "--style", "19")
    assert done.returncode == 0, done.stderr
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count, info.fps) == (1280, 720, 132, 25)
    assert audio_md5(out) == audio_md5(bunny)
    preview = out.with_suffix(".preview.jpg")
    assert f"styled video: {out}" in done.stdout and f"before/after preview: {preview}" in done.stdout
    with Image.open(preview) as image:
        assert image.size == (3 * 320, 2 * 180)


def test_blend_and_scale(bunny, tmp_path):
    out = tmp_path / "small.mp4"
    assert main([str(bunny), "-o", str(out), "--style", "3:0.5,12:0.5", "--scale", "0.25", "--no-preview"]) == 0
    info = probe_video(out)
    assert (info.width, info.height, info.frame_count) == (320, 180, 132) and info.has_audio


def test_default_output_name_sits_beside_the_input(make_clip, tmp_path):
    source = tmp_path / "holiday clip.mp4"
    source.write_bytes(make_clip(frames=6, audio=False).read_bytes())
    assert main([str(source), "--no-preview"]) == 0
    assert (tmp_path / "holiday clip.styled.mp4").is_file()


def test_quality_target_searches_a_crf_and_crf_fixes_it(make_clip, tmp_path):
    """Like a job: without --crf the CLI searches the CRF for the VMAF target on the video's own
    first frames styled and says what it chose; --crf skips the search."""
    clip = make_clip(frames=12, audio=False)
    searched = cli(str(clip), "-o", str(tmp_path / "searched.mp4"), "--quality", "90", "--no-preview")
    assert searched.returncode == 0, searched.stderr
    line = next(line for line in searched.stderr.splitlines() if line.startswith("quality: CRF "))
    assert "target 90" in line and probe_video(tmp_path / "searched.mp4").frame_count == 12
    fixed = cli(str(clip), "-o", str(tmp_path / "fixed.mp4"), "--crf", "30", "--no-preview")
    assert fixed.returncode == 0, fixed.stderr
    assert "quality: CRF" not in fixed.stderr and probe_video(tmp_path / "fixed.mp4").frame_count == 12


@pytest.mark.parametrize(
    ("make_args", "code", "message"),
    [
        (lambda d, clip: [str(d / "missing.mp4")], "input_missing", "input not found"),
        (lambda d, clip: [str(d / "notes.mp4")], "not_a_video", "not a readable video"),
        (lambda d, clip: [str(d / "audio.m4a")], "not_a_video", "audio only"),
        (lambda d, clip: [str(d / "photo.mp4")], "not_a_video", "still image"),
        (lambda d, clip: [str(d / "empty.mp4")], "not_a_video", "empty file"),
        (lambda d, clip: [str(clip), "--style", "99"], "usage", "out of range"),
        (lambda d, clip: [str(clip), "--style", "nope"], "usage", "3:0.5,12:0.5"),
        (lambda d, clip: [str(clip), "--style", str(d / "missing.jpg")], "style_image", "not found"),
        (lambda d, clip: [str(clip), "--style", str(d / "fake.jpg")], "style_image", "cannot be read"),
        (lambda d, clip: [str(clip), "--scale", "0"], "usage", "--scale"),
        (lambda d, clip: [str(clip), "--stability", "1.2"], "usage", "--stability must be in [0, 1]"),
        (lambda d, clip: [str(clip), "--quality", "40"], "usage", "--quality must be a VMAF target in 50-100"),
        (lambda d, clip: [str(clip), "--quality", "90", "--crf", "20"], "usage", "set --crf or --quality, not both"),
    ],
)
def test_user_errors_are_one_line_with_distinct_codes(make_args, code, message, make_clip, tmp_path):
    clip = make_clip(frames=4)
    (tmp_path / "notes.mp4").write_text("meeting notes, not a video")
    (tmp_path / "fake.jpg").write_text("not a picture")
    (tmp_path / "empty.mp4").write_bytes(b"")
    Image.new("RGB", (64, 48), "red").save(tmp_path / "photo.mp4", format="PNG")
    run_ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(tmp_path / "audio.m4a"))
    done = cli(*make_args(tmp_path, clip), "-o", str(tmp_path / "out.mp4"))
    assert done.returncode == EXIT_CODES[code]
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.mp4").exists()
