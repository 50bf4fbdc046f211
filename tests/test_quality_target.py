"""Per-title CRF search: the bisection rule, and a real encode scored by the bundled libvmaf."""

from __future__ import annotations

import numpy as np
import pytest

from scoring_job.output_format import OutputFormat
from scoring_job.probe import probe_video
from scoring_job.quality_target import (
    CRF_RANGE,
    FIXED_CRF,
    QualityChoice,
    choose_crf,
    encode_frames,
    encoder_crf,
    largest_crf,
    searchable,
    vmaf,
)
from scoring_job.video_io import EncodeOptions, head_frames


@pytest.mark.parametrize("threshold", [14, 15, 22, 27, 39, 40])
def test_bisection_finds_the_largest_crf_reaching_the_target(threshold):
    calls = []

    def forced(crf: int) -> float:  # VMAF 99 up to `threshold`, 80 above it
        calls.append(crf)
        return 99.0 if crf <= threshold else 80.0

    crf, tried = largest_crf(forced, 95, (14, 40))
    assert crf == threshold
    assert tried[crf] >= 95 and all(score < 95 for c, score in tried.items() if c > crf)
    assert len(calls) == len(set(calls)) <= 7  # log2 of the range, each CRF measured once


def test_when_even_the_lowest_crf_misses_it_is_returned_and_marked_unreached():
    crf, tried = largest_crf(lambda crf: 60.0, 95, (14, 40))
    assert (crf, tried) == (14, {14: 60.0})
    assert not QualityChoice(crf=crf, vmaf=60.0, kbps=1.0, target=95, frames=3, tried=tried).reached


@pytest.fixture(scope="module")
def frames(make_clip) -> np.ndarray:
    clip = make_clip(frames=12, size="128x72", audio=False)
    return head_frames(clip, probe_video(clip), (128, 72), 12)


def test_vmaf_of_a_file_against_itself_is_top_and_falls_with_crf(frames, tmp_path):
    reference = encode_frames(frames, tmp_path / "ref.mp4", "24/1", EncodeOptions(crf=0, preset="ultrafast"))
    rough = encode_frames(frames, tmp_path / "rough.mp4", "24/1", EncodeOptions(crf=45))
    assert vmaf(reference, reference) > 99
    assert vmaf(reference, rough) < vmaf(reference, reference) - 5


@pytest.mark.parametrize("target", [90.0, 97.0])
def test_real_search_keeps_the_largest_passing_crf(frames, tmp_path, target):
    choice = choose_crf(frames, "24/1", target)
    assert choice.reached and choice.vmaf == choice.tried[choice.crf] >= target
    assert all(score < target for crf, score in choice.tried.items() if crf > choice.crf)
    if choice.crf < 40:  # the next CRF up, measured on its own, misses the target
        reference = encode_frames(frames, tmp_path / "ref.mp4", "24/1", EncodeOptions(crf=0, preset="ultrafast"))
        above = encode_frames(frames, tmp_path / "above.mp4", "24/1", EncodeOptions(crf=choice.crf + 1))
        assert vmaf(reference, above) < target
    assert choice.kbps > 0 and choice.frames == len(frames)


def test_a_higher_target_never_picks_a_larger_crf(frames):
    assert choose_crf(frames, "24/1", 97.0).crf <= choose_crf(frames, "24/1", 85.0).crf


def test_no_frames_is_refused():
    with pytest.raises(ValueError, match="at least one sample frame"):
        choose_crf(np.empty((0, 8, 8, 3), np.uint8), "24/1")


def test_the_search_stands_for_h264_and_hevc_outputs():
    """It scores x264 / x265 encodes of 8-bit samples against x264's CRF 0: AV1 and VP9 keep a fixed CRF."""
    assert searchable(OutputFormat()) and searchable(OutputFormat(bit_depth=10))
    assert searchable(OutputFormat(codec="hevc", bit_depth=10))
    assert not any(searchable(OutputFormat(codec=codec)) for codec in ("av1", "vp9"))


def test_an_hevc_search_encodes_its_candidates_with_x265_without_b_frames(frames, tmp_path):
    candidate = encode_frames(frames, tmp_path / "c.mp4", "24/1", EncodeOptions(codec="libx265", reorder=False))
    assert probe_video(candidate).codec == "hevc"  # what the search scores for an HEVC output
    choice = choose_crf(frames, "24/1", 93, codec="libx265", reorder=False)
    assert choice.reached and choice.vmaf >= 93 and choice.kbps > 0
    assert choice.tried.get(choice.crf + 1, 0) < 93 or choice.crf == CRF_RANGE[1]


def test_the_crf_is_the_users_else_searched_where_the_search_stands_else_fixed():
    searched = []

    def search(target: float) -> QualityChoice:
        searched.append(target)
        return QualityChoice(crf=23, vmaf=95.2, kbps=900.0, target=target, frames=8)

    assert encoder_crf(30, 95.0, OutputFormat(), search) == (30, None) and searched == []
    crf, choice = encoder_crf(None, 95.0, OutputFormat(), search)
    assert (crf, choice.crf, searched) == (23, 23, [95.0])
    assert encoder_crf(None, 95.0, OutputFormat(codec="av1"), search) == (FIXED_CRF, None)
    assert encoder_crf(None, None, OutputFormat(), search) == (FIXED_CRF, None) and searched == [95.0]
