"""Segment warm-up through the real scoring job: no frame added or dropped, and no seam at the boundary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.temporal import decode_frames, lossless_frames, write_job
from bench.temporal_metric import clip_flows, ewarp_series, psnr
from scoring_job.probe import probe_video
from scoring_job.score import Rank, result_paths, run
from scoring_job.spanning import join_pieces, packet_count
from scoring_job.temporal import warmup_frames
from scoring_job.video_io import tail_frames

SIZE, FRAMES, CUT, ALPHA = (320, 180), 28, 14, 0.6


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """28 real frames, lossless (FFV1), so that whole and cut decode to the very same pixels."""
    folder = tmp_path_factory.mktemp("seam")
    return lossless_frames("bigbuckbunny.mp4", SIZE, FRAMES, folder)


def _styled(tmp_path: Path, clip: Path, cuts: list[int], stability: float) -> list[np.ndarray]:
    options = {"compile": False, "batch_size": 4, "stability": stability, "crf": 0,
               "preset": "ultrafast"}  # lossless: compare the filter, not two encodes
    manifest = write_job(tmp_path / "in", clip, cuts, FRAMES, options)
    assert run(tmp_path / "in", tmp_path / "out", Rank(0, 1, 0)) == []
    videos = [result_paths(tmp_path / "out", segment)[0] for segment in manifest.segments]
    assert [packet_count(video) for video in videos] == [segment.frames for segment in manifest.segments]
    joined = join_pieces(videos, tmp_path / "joined.mp4")  # a piece after the first continues its encode
    info = probe_video(joined)
    assert (info.frame_count, info.fps) == (FRAMES, 25)  # nothing added or dropped, same rate
    return decode_frames(joined)


def test_tail_frames_are_the_last_frames_of_the_file(clip):
    info = probe_video(clip)
    every = decode_frames(clip)
    tail = tail_frames(clip, info, SIZE, 5)
    assert len(tail) == 5 and all(np.array_equal(a, b) for a, b in zip(tail, every[-5:], strict=True))
    assert len(tail_frames(clip, info, SIZE, 100)) == FRAMES  # asking for more gives the whole file


def test_segments_with_warmup_match_one_pass_and_show_no_seam(clip, tmp_path):
    whole = _styled(tmp_path / "whole", clip, [], ALPHA)
    segmented = _styled(tmp_path / "cut", clip, [CUT], ALPHA)
    assert len(whole) == len(segmented) == FRAMES
    assert warmup_frames(ALPHA) < CUT  # the warm-up fits in the segment before
    # After the boundary the segmented job carries the same state as the one-pass run.
    assert psnr(whole[CUT:CUT + 4], segmented[CUT:CUT + 4]) > 38
    series = ewarp_series(segmented, clip_flows(decode_frames(clip)))
    seam = series[CUT - 1]
    interior = np.mean([value for i, value in enumerate(series) if i != CUT - 1 and value is not None])
    assert seam is not None and seam < 1.3 * interior
