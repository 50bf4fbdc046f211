"""What comes out keeps the source's codec family, bit depth, colour and HDR10 metadata, through the
real media steps (probe -> split -> encode as the manifest says -> stitch) on Azurite and ffmpeg."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from media_clips import run_ffmpeg
from test_media_activities import fetch_output, run_job, sync_samples

from scoring_job.engine import DeviceConfig
from scoring_job.ffmpeg_binary import ffmpeg_binary
from scoring_job.probe import probe_video

MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
BT709_10 = "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p10le," \
           "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
HDR10 = "scale=out_color_matrix=bt2020:out_range=tv,format=yuv420p10le," \
        "setparams=color_primaries=bt2020:color_trc=smpte2084:colorspace=bt2020nc:range=tv"
HLG = "scale=out_color_matrix=bt2020:out_range=tv,format=yuv420p10le," \
      "setparams=color_primaries=bt2020:color_trc=arib-std-b67:colorspace=bt2020nc:range=tv"
X265 = ("-c:v", "libx265", "-preset", "ultrafast")


class Same:
    """A stand-in model that returns its frames: what comes out is what the media path did to them."""

    config = DeviceConfig(torch.device("cpu"), torch.float32, 4)
    device_name = "cpu:fp32"

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("format-clips")
    testsrc = ("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24", "-frames:v", "36")
    made = {name: folder / f"{name}.mp4" for name in ("hevc10", "hdr10", "hlg", "gradient", "flat")}
    # One keyframe: split re-encodes its segments (libx264 10-bit, untagged), the colour comes from probe.
    run_ffmpeg(*testsrc, "-vf", BT709_10, *X265, "-x265-params", "log-level=error", made["hevc10"])
    # Closed keyframes every 12 frames: split copies the HEVC packets, SEI and all.
    run_ffmpeg(*testsrc, "-vf", HDR10, *X265, "-x265-params", "log-level=error:keyint=12:min-keyint=12:open-gop=0:"
               f"master-display={MASTER_DISPLAY}:max-cll=1000,400",
               made["hdr10"])
    # HLG: no static metadata, only its transfer (arib-std-b67) and BT.2020 tags.
    run_ffmpeg(*testsrc, "-vf", HLG, *X265, "-x265-params", "log-level=error", made["hlg"])
    # A horizontal ramp over the whole limited range: 877 luma levels, more than 8 bits can name.
    run_ffmpeg("-f", "lavfi", "-i", "nullsrc=size=1024x32:rate=24", "-frames:v", "6", "-vf",
               "format=yuv420p10le,geq=lum='64+X*876/1023':cb=512:cr=512,"
               "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv",
               *X265, "-x265-params", "log-level=error", made["gradient"])
    # One saturated colour, inside the gamut: BT.601 against BT.709 moves its chroma by tens of levels.
    run_ffmpeg("-f", "lavfi", "-i", "color=c=0x2060D0:size=160x96:rate=24", "-frames:v", "6", "-vf", BT709_10,
               *X265, "-x265-params", "log-level=error", made["flat"])
    return made


def first_frame_planes(path: Path) -> tuple[av.VideoFrame, list[np.ndarray]]:
    """The first frame and its planes as arrays (uint16 above 8 bits), without any conversion."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    dtype = np.uint16 if max(c.bits for c in frame.format.components) > 8 else np.uint8
    planes = []
    for plane in frame.planes:
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        planes.append(rows[:, :plane.width * np.dtype(dtype).itemsize].copy().view(dtype))
    return frame, planes


def colr_box(path: Path) -> tuple[int, int, int, bool]:
    """The MP4 `colr` box (nclx): primaries, transfer, matrix code points and the full-range flag."""
    data = path.read_bytes()
    at = data.index(b"colrnclx") + 8
    primaries, transfer, matrix = struct.unpack(">3H", data[at:at + 6])
    return primaries, transfer, matrix, bool(data[at + 6] & 0x80)


def styled_entry(stitched: dict) -> dict:
    return next(stream for stream in stitched["streams"] if stream["action"] == "styled")


@pytest.mark.parametrize("spanning", [False, True], ids=["encoder per segment", "one encoder"])
def test_10_bit_hevc_comes_back_10_bit_hevc_with_its_colour(store, clips, tmp_path, spanning):
    probed, stitched = run_job(store, clips["hevc10"], "hevc10.mp4", transform=Same(), spanning=spanning)
    assert probed["split_mode"] == "reencode"
    out = fetch_output(store, "hevc10.mp4", tmp_path)
    info = probe_video(out)
    assert (info.codec, info.pix_fmt, info.frame_count) == ("hevc", "yuv420p10le", 36)
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == ("bt709",) * 3 + ("tv",)
    assert styled_entry(stitched)["output_codec"] == "hevc" and "note" not in styled_entry(stitched)
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.codec_tag == "hvc1"
    flagged, real = sync_samples(out)  # the MP4 demuxer calls every sample of a piece without stss a keyframe
    assert flagged == real and (len(real) < probed["segment_count"]) == spanning


def test_yuv_to_rgb_and_back_use_the_source_matrix(store, clips, tmp_path):
    """A colour comes back where it was: BT.601 on either side would move it by tens of levels."""
    run_job(store, clips["flat"], "flat.mp4", transform=Same())
    (_, source), (_, styled) = first_frame_planes(clips["flat"]), first_frame_planes(fetch_output(store, "flat.mp4",
                                                                                                  tmp_path))
    for before, after in zip(source, styled, strict=True):
        assert abs(float(np.median(before)) - float(np.median(after))) <= 4  # 10-bit levels


def test_hdr10_keeps_its_tags_and_mastering_metadata(store, clips, tmp_path):
    probed, stitched = run_job(store, clips["hdr10"], "hdr10.mp4", transform=Same())
    assert probed["split_mode"] == "copy"
    out = fetch_output(store, "hdr10.mp4", tmp_path)
    info, source = probe_video(out), probe_video(clips["hdr10"])
    assert (info.codec, info.bit_depth, info.chroma) == ("hevc", 10, "420")
    kept = ("color_primaries", "color_trc", "colorspace", "color_range", "master_display", "content_light")
    assert {key: getattr(info, key) for key in kept} == {key: getattr(source, key) for key in kept}
    assert (info.color_trc, info.master_display, info.content_light) == ("smpte2084", MASTER_DISPLAY, "1000,400")
    assert colr_box(out) == (9, 16, 9, False)  # the container says so too, not only the bitstream's VUI
    note = styled_entry(stitched)["note"]
    assert "HDR10 metadata kept in the HEVC bitstream, and in an MP4 output as mdcv/clli" in note
    # ...and so do its mdcv/clli boxes, as libavformat reads them back (the stream's own side data)
    dump = subprocess.run([ffmpeg_binary(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "Content light level metadata: MaxCLL=1000, MaxFALL=400" in dump, dump
    assert "Mastering display metadata: has_primaries:1 has_luminance:1 r(0.6800,0.3200) g(0.2650,0.6900)" in dump
    assert "wp(0.3127, 0.3290) min_luminance=0.000100, max_luminance=1000.000000" in dump


def test_hlg_keeps_its_transfer_and_bt2020_tags(store, clips, tmp_path):
    _, stitched = run_job(store, clips["hlg"], "hlg.mp4", transform=Same())
    out = fetch_output(store, "hlg.mp4", tmp_path)
    info = probe_video(out)
    assert (info.codec, info.pix_fmt, info.frame_count) == ("hevc", "yuv420p10le", 36)
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (
        "bt2020", "arib-std-b67", "bt2020nc", "tv")
    assert colr_box(out) == (9, 18, 9, False)  # BT.2020, HLG (ARIB STD-B67), BT.2020 non-constant
    assert styled_entry(stitched)["output_codec"] == "hevc"


def test_8_bit_h264_stays_8_bit_h264(store, make_clip, tmp_path):
    _, stitched = run_job(store, make_clip(frames=24, audio=False), "h264.mp4")
    info = probe_video(fetch_output(store, "h264.mp4", tmp_path))
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("h264", "yuv420p", 8)
    assert styled_entry(stitched)["output_codec"] == "h264"


def test_codec_av1_gives_av1_at_the_source_depth(store, clips, tmp_path):
    probed, stitched = run_job(store, clips["hevc10"], "to-av1.mp4", options={"codec": "av1"}, transform=Same())
    assert probed["options"] == {"codec": "av1"}
    info = probe_video(fetch_output(store, "to-av1.mp4", tmp_path))
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].codec_context.codec_tag == "av01"  # AV1 in MP4
    assert (info.pix_fmt, info.frame_count, info.colorspace) == ("yuv420p10le", 36, "bt709")
    assert styled_entry(stitched)["output_codec"] == "av1"
    flagged, real = sync_samples(tmp_path / "out.mp4")  # stitch's keyframe flags, read from the OBUs
    assert flagged == real and len(real) == probed["segment_count"]  # an encoder per AV1 segment


def test_vp9_hdr10_keeps_its_mastering_metadata_in_smdm_and_coll_boxes(store, clips, tmp_path):
    source = tmp_path / "vp9-hdr10.mp4"  # ffmpeg carries the HEVC's HDR10 side data into VP9's MP4 boxes
    run_ffmpeg("-i", clips["hdr10"], "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8",
               "-pix_fmt", "yuv420p10le", source)
    assert probe_video(source).master_display == MASTER_DISPLAY
    _, stitched = run_job(store, source, "vp9-hdr10.mp4", transform=Same())
    out = fetch_output(store, "vp9-hdr10.mp4", tmp_path)
    info = probe_video(out)
    assert (info.codec, info.bit_depth, info.master_display, info.content_light) == ("vp9", 10, MASTER_DISPLAY,
                                                                                       "1000,400")
    assert "SmDm/CoLL" in styled_entry(stitched)["note"]
    dump = subprocess.run([ffmpeg_binary(), "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert "Content light level metadata: MaxCLL=1000, MaxFALL=400" in dump, dump
    assert "r(0.6800,0.3200) g(0.2650,0.6900) b(0.1500 0.0600) wp(0.3127, 0.3290)" in dump


def test_vp9_segments_through_one_encoder_stitch_without_keyframes_at_the_seams(store, tmp_path):
    source = tmp_path / "vp9.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24", "-frames:v", "36", "-c:v", "libvpx-vp9",
               "-g", "12", "-deadline", "realtime", "-cpu-used", "8", source)
    probed, _ = run_job(store, source, "vp9.mp4", transform=Same(), spanning=True)
    out = fetch_output(store, "vp9.mp4", tmp_path)
    assert (probe_video(out).codec, probe_video(out).frame_count) == ("vp9", 36) and probed["segment_count"] > 1
    flagged, real = sync_samples(out)
    assert flagged == real == [0]  # one encoder: one keyframe, none at the seams
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 36


def test_10_bit_frames_never_pass_through_8_bits(store, clips, tmp_path):
    run_job(store, clips["gradient"], "gradient.mp4", transform=Same())
    frame, (luma, *_) = first_frame_planes(fetch_output(store, "gradient.mp4", tmp_path))
    assert frame.format.name == "yuv420p10le"
    assert len(np.unique(luma)) > 256  # an 8-bit step anywhere would leave at most 256 (220 in limited range)
