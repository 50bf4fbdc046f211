"""What the styled video is encoded as: the source's family, depth, chroma and colour, or a listed conversion."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch
from pydantic import ValidationError
from test_video_args import INFO

from activities.media.job_inputs import JobInputProblem, check_options
from scoring_job.engine import peak, to_frames
from scoring_job.manifest import ScoringOptions
from scoring_job.output_format import OutputFormat, choose_output
from scoring_job.probe import picture_facts
from scoring_job.video_io import EncodeOptions, decode_args, encode_args

HDR10 = {"codec": "hevc", "width": 3840, "height": 2160, "bit_depth": 10, "chroma": "420",
         "color_primaries": "bt2020", "color_trc": "smpte2084", "colorspace": "bt2020nc", "color_range": "tv",
         "master_display": "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)",
         "content_light": "1000,400"}


@pytest.mark.parametrize(("source", "family"), [("h264", "h264"), ("hevc", "hevc"), ("libdav1d", "av1"),
                                                ("vp9", "vp9")])
def test_the_source_family_is_kept(source, family):
    chosen = choose_output({"codec": source, "width": 640, "height": 360})
    assert (chosen.codec, chosen.bit_depth, chosen.chroma, chosen.conversions) == (family, 8, "420", ())


def test_other_codecs_become_h264_and_say_so():
    chosen = choose_output({"codec": "mpeg4", "width": 640, "height": 360})
    assert chosen.codec == "h264"
    assert len(chosen.conversions) == 1 and "mpeg4 -> H.264" in chosen.conversions[0]


def test_hdr10_keeps_depth_tags_and_metadata_in_the_encoder_params():
    chosen = choose_output(HDR10)
    assert (chosen.codec, chosen.bit_depth, chosen.pix_fmt(3840, 2160)) == ("hevc", 10, "yuv420p10le")
    assert chosen.frame_tags() == {"color_primaries": "bt2020", "color_trc": "smpte2084", "colorspace": "bt2020nc",
                                   "range": "tv"}
    params = chosen.encoder_params()["x265-params"]
    assert f"master-display={HDR10['master_display']}" in params and "max-cll=1000,400" in params
    assert chosen.from_rgb() == {"out_color_matrix": "bt2020", "out_range": "tv"}
    assert chosen.to_rgb() == {"in_color_matrix": "bt2020", "in_range": "tv"}


def test_av1_gets_svt_decimals_and_vp9_keeps_hdr10_for_the_container():
    av1 = choose_output(HDR10, "av1")
    assert av1.encoder_params() == {"svtav1-params": "mastering-display=G(0.265,0.69)B(0.15,0.06)R(0.68,0.32)"
                                                     "WP(0.3127,0.329)L(1000,0.0001):content-light=1000,400"}
    vp9 = choose_output({**HDR10, "codec": "vp9"})
    assert vp9.codec == "vp9" and vp9.master_display == HDR10["master_display"] and vp9.encoder_params() == {}
    assert any("SmDm/CoLL" in note and "Matroska output loses it" in note for note in vp9.conversions)


@pytest.mark.parametrize(("source", "codec", "expected", "note"), [
    ({"codec": "prores", "bit_depth": 12, "chroma": "422"}, "source", ("h264", 10, "422"), "12-bit -> 10-bit"),
    ({"codec": "hevc", "bit_depth": 10, "chroma": "422"}, "av1", ("av1", 10, "420"), "4:2:2 -> 4:2:0"),
    ({"codec": "h264", "chroma": "444", "width": 641, "height": 360}, "av1", ("h264", 8, "444"), "AV1 -> H.264"),
    ({"codec": "h264", "has_alpha": True}, "source", ("h264", 8, "420"), "alpha channel not kept"),
    ({"codec": "h264", "colorspace": "ycgco"}, "source", ("h264", 8, "420"), "matrix ycgco -> untagged"),
])
def test_what_an_encoder_cannot_keep_is_listed(source, codec, expected, note):
    chosen = choose_output(source, codec)
    assert (chosen.codec, chosen.bit_depth, chosen.chroma) == expected
    assert any(note in conversion for conversion in chosen.conversions), chosen.conversions


def test_odd_sizes_are_444_and_even_scaled_sizes_keep_av1():
    assert OutputFormat(codec="hevc", bit_depth=10).pix_fmt(641, 360) == "yuv444p10le"
    assert choose_output({"codec": "h264", "width": 641, "height": 361}, "av1", scale=0.5).codec == "av1"


def test_codec_option_is_checked_with_its_crf_scale():
    assert ScoringOptions(codec="av1", crf=60).crf == 60
    with pytest.raises(ValidationError, match="only codec av1 goes up to 63"):
        ScoringOptions(crf=60)
    with pytest.raises(JobInputProblem, match="codec"):
        check_options({"codec": "vp8"})
    with pytest.raises(JobInputProblem, match="hevc"):
        check_options({"codec": "hevc", "crf": 55})
    assert check_options({"codec": "hevc"}) == {"codec": "hevc"} and check_options({}) == {}


def test_encoders_take_their_own_crf_range():
    assert EncodeOptions(crf=63, codec="libsvtav1").codec_args()["crf"] == 63
    with pytest.raises(ValueError, match="crf must be 0-51 for libx265"):
        EncodeOptions(crf=52, codec="libx265")


def test_a_10_bit_hdr_encode_converts_with_the_source_matrix_and_tags_the_frames():
    chosen = choose_output(HDR10)
    args = encode_args(Path("out.mp4"), (640, 360), "25/1", EncodeOptions(codec="libx265"), output=chosen)
    graph = args[args.index("-filter_complex") + 1]
    assert args[args.index("-pix_fmt") + 1] == "rgb48le"  # the input: 16 bits a channel from the model
    assert "scale=out_color_matrix=bt2020:out_range=tv" in graph and "format=yuv420p10le" in graph
    assert "setparams=color_primaries=bt2020:color_trc=smpte2084:colorspace=bt2020nc:range=tv" in graph
    params = args[args.index("-x265-params") + 1]
    assert params.startswith("log-level=error:master-display=") and "max-cll=1000,400" in params
    assert args[args.index("-tag:v") + 1] == "hvc1"
    decode = decode_args(Path("in.mp4"), INFO, (1280, 720), output=chosen)
    assert "scale=in_color_matrix=bt2020:in_range=tv" in decode[decode.index("-filter_complex") + 1]
    assert decode[decode.index("-pix_fmt") + 1] == "rgb48le"


def test_an_encoder_of_another_family_is_refused():
    with pytest.raises(ValueError, match="libx264 does not write the output's HEVC"):
        encode_args(Path("out.mp4"), (640, 360), "25/1", EncodeOptions(), output=choose_output(HDR10))


@pytest.mark.parametrize(("pix_fmt", "facts"), [
    ("yuv420p", (8, "420", False)), ("yuv422p10le", (10, "422", False)), ("p010le", (10, "420", False)),
    ("gbrp10le", (10, "444", False)), ("yuva444p", (8, "444", True)), ("gray", (8, "420", False)),
])
def test_picture_facts_read_depth_chroma_and_alpha(pix_fmt, facts):
    found = picture_facts(av.VideoFrame(64, 64, pix_fmt))
    assert (found["bit_depth"], found["chroma"], found["has_alpha"]) == facts
    assert found["master_display"] is None and found["colorspace"] is None  # untagged stays untagged


def test_the_model_side_of_the_frame_path_keeps_16_bits():
    """uint16 frames in, floats to the model, uint16 out: a 1024-level ramp keeps every level."""
    ramp = np.repeat((np.arange(1024, dtype=np.uint32) * 65535 // 1023).astype(np.uint16), 3).reshape(1, 1, 1024, 3)
    image = torch.from_numpy(ramp).permute(0, 3, 1, 2).float() / peak(ramp.dtype)
    back = to_frames(image, np.uint16)
    assert back.dtype == np.uint16 and len(np.unique(back)) == 1024 and np.array_equal(back, ramp)
