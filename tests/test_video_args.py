"""The exact ffmpeg command lines: the CPU defaults unchanged, NVDEC/NVENC only when asked for."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import torch

from scoring_job.ffmpeg_binary import ffmpeg_binary
from scoring_job.probe import VideoInfo
from scoring_job.spanning import piece_muxer
from scoring_job.video_io import EncodeOptions, FfmpegError, FrameReader, decode_args, encode_args

INFO = VideoInfo(width=1280, height=720, fps=Fraction(25), frame_count=10, duration=0.4, codec="h264",
                 pix_fmt="yuv420p", rotation=0, has_audio=True, audio_codec="aac", container="mov,mp4,m4a,3gp,3g2,mj2")
QUIET = ["-nostdin", "-hide_banner", "-loglevel", "error"]
RAW_OUT = ["-f", "rawvideo", "-fps_mode", "passthrough", "-pix_fmt", "rgb24", "pipe:"]
RAW_IN = ["-f", "rawvideo", "-framerate", "25/1", "-pix_fmt", "rgb24", "-s", "640x360", "-i", "pipe:"]


def test_cpu_decode_is_the_command_it_always_was():
    scaled = decode_args(Path("in.mp4"), INFO, (640, 360))
    assert scaled == [ffmpeg_binary(), "-i", "in.mp4", "-filter_complex", "[0:v]scale=640:360:flags=lanczos[s0]",
                      "-map", "[s0]", *RAW_OUT, *QUIET]
    tail = decode_args(Path("in.mp4"), INFO, (1280, 720), last_seconds=1.5)
    assert tail == [ffmpeg_binary(), "-sseof", "-1.5", "-i", "in.mp4", "-map", "0:v", *RAW_OUT, *QUIET]


def test_cpu_encode_is_the_command_it_always_was():
    args = encode_args(Path("out.mp4"), (640, 360), "25/1", EncodeOptions(), audio_source=Path("in.mp4"))
    assert args == [ffmpeg_binary(), *RAW_IN, "-i", "in.mp4", "-map", "0", "-map", "1:a", "-f", "mp4",
                    "-acodec", "copy", "-crf", "18", "-movflags", "+faststart", "-pix_fmt", "yuv420p",
                    "-preset", "veryfast", "-r", "25/1", "-vcodec", "libx264", "out.mp4", *QUIET, "-y"]


def test_nvdec_is_an_input_option_before_the_seek_and_input():
    args = decode_args(Path("in.mp4"), INFO, (1280, 720), last_seconds=2, hwaccel="cuda")
    assert args == [ffmpeg_binary(), "-hwaccel", "cuda", "-sseof", "-2", "-i", "in.mp4", "-map", "0:v",
                    *RAW_OUT, *QUIET]


def test_nvenc_encodes_at_constant_quality_with_its_own_preset():
    args = encode_args(Path("out.mp4"), (640, 360), "25/1", EncodeOptions(crf=21, preset="p4", codec="h264_nvenc"))
    assert args == [ffmpeg_binary(), *RAW_IN, "-f", "mp4", "-b:v", "0", "-cq", "21", "-movflags", "+faststart",
                    "-pix_fmt", "yuv420p", "-preset", "p4", "-r", "25/1", "-rc", "vbr", "-vcodec", "h264_nvenc",
                    "out.mp4", *QUIET, "-y"]


def test_a_spanning_encode_turns_b_frames_off_and_cuts_one_mp4_per_segment(tmp_path):
    muxer = piece_muxer([20, 9, 14], tmp_path / "run.list")
    args = encode_args(Path("run-%05d.mp4"), (640, 360), "25/1", EncodeOptions(reorder=False), muxer=muxer)
    assert args == [ffmpeg_binary(), *RAW_IN, "-f", "segment", "-bf", "0", "-break_non_keyframes", "1", "-crf", "18",
                    "-pix_fmt", "yuv420p", "-preset", "veryfast", "-r", "25/1", "-segment_format", "mp4",
                    "-segment_format_options", "movflags=+faststart", "-segment_frames", "20,29",
                    "-segment_list", str(tmp_path / "run.list"), "-segment_list_type", "flat", "-vcodec", "libx264",
                    "run-%05d.mp4", *QUIET, "-y"]
    nvenc = EncodeOptions(crf=21, preset="p4", codec="h264_nvenc", reorder=False).codec_args()
    assert nvenc["bf"] == 0 and EncodeOptions(codec="libx265", reorder=False).codec_args()["bf"] == 0
    vp9 = EncodeOptions(crf=30, codec="libvpx-vp9", reorder=False).codec_args()
    assert (vp9["lag-in-frames"], vp9["auto-alt-ref"]) == (0, 0)


@pytest.mark.parametrize(("options", "message"), [
    ({"codec": "libsvtav1", "reorder": False}, "libsvtav1 keeps its frame reordering here"),
    ({"codec": "hevc_nvenc"}, "codec must be one of libx264, h264_nvenc"),
    ({"codec": "h264_nvenc"}, "h264_nvenc presets are p1"),  # x264's "veryfast" means nothing to NVENC
])
def test_encoder_choices_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        EncodeOptions(**options)


def test_unknown_hwaccel_is_refused():
    with pytest.raises(ValueError, match="hwaccel must be one of cuda"):
        decode_args(Path("in.mp4"), INFO, (1280, 720), hwaccel="vaapi")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure without a CUDA device")
def test_nvdec_without_a_gpu_fails_loudly_instead_of_decoding_on_the_cpu(make_clip):
    source = make_clip(frames=4, size="64x48", audio=False)
    info = VideoInfo(64, 48, Fraction(24), 4, 4 / 24, "h264", "yuv420p", 0, False, None, "mp4")
    reader = FrameReader(source, info, (64, 48), hwaccel="cuda")
    with pytest.raises(FfmpegError, match=r"(?i)cuda"):
        list(reader.batches(4))
