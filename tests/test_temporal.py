"""The temporal filter (scoring_job/temporal.py): the blend, cut resets, determinism, and segment warm-up."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from temporal_frames import clip_frames

from bench.temporal_metric import clip_flows, ewarp_series
from scoring_job.temporal import Motion, MotionEstimator, TemporalFilter, warmup_frames

CPU = torch.device("cpu")


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1).float() / 255


def _flicker(frames: list[np.ndarray], amount: float = 12) -> list[torch.Tensor]:
    """A stand-in for per-frame stylization: the frame plus texture noise drawn afresh every frame."""
    return [(_tensor(f) + torch.from_numpy(np.random.default_rng(i).normal(0, amount / 255, f.shape))
             .permute(2, 0, 1).float()).clamp(0, 1) for i, f in enumerate(frames)]


def _run(alpha: float, frames: list[np.ndarray], styled: list[torch.Tensor]) -> list[torch.Tensor]:
    motion, blend = MotionEstimator(), TemporalFilter(alpha, CPU)
    return [blend(s, motion(f)) for f, s in zip(frames, styled, strict=True)]


def test_still_scene_is_the_recursive_average():
    frame = clip_frames("bigbuckbunny.mp4", (160, 90), 1)[0]
    styled = [torch.full((3, 90, 160), value) for value in (0.2, 0.6, 0.4)]
    out = _run(0.5, [frame] * 3, styled)
    assert torch.equal(out[0], styled[0])
    assert torch.allclose(out[1], torch.full_like(out[1], 0.4), atol=1e-6)  # 0.5 * 0.6 + 0.5 * 0.2
    assert torch.allclose(out[2], torch.full_like(out[2], 0.4), atol=1e-6)  # 0.5 * 0.4 + 0.5 * 0.4


def test_flicker_on_moving_footage_is_reduced_and_the_picture_kept():
    frames = clip_frames("bigbuckbunny.mp4", (320, 180), 10)
    styled = _flicker(frames)
    out = _run(0.5, frames, styled)
    flows = clip_flows(frames)

    def ewarp(video: list[torch.Tensor]) -> float:
        return float(np.mean(ewarp_series([v.permute(1, 2, 0).numpy() for v in video], flows)))

    assert ewarp(out) < 0.5 * ewarp(styled)
    clean = [_tensor(f) for f in frames]
    # The noise is averaged away, not the content: closer to the clean frames than the input was.
    assert float((out[-1] - clean[-1]).square().mean()) < 0.6 * float((styled[-1] - clean[-1]).square().mean())


def test_a_scene_cut_resets_the_filter():
    frames = clip_frames("bigbuckbunny.mp4", (320, 180), 4) + clip_frames("bikes.mp4", (320, 180), 3, start=40)
    styled = _flicker(frames)
    out = _run(0.7, frames, styled)
    assert torch.equal(out[4], styled[4])  # the first frame after the cut is taken as stylized
    assert not torch.equal(out[3], styled[3]) and not torch.equal(out[5], styled[5])


def test_the_filter_is_deterministic_and_checks_alpha():
    frames = clip_frames("bigbuckbunny.mp4", (160, 90), 5)
    styled = _flicker(frames)
    first, second = _run(0.6, frames, styled), _run(0.6, frames, styled)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    with pytest.raises(ValueError, match="stability"):
        TemporalFilter(0, CPU)


def test_half_size_flow_for_wide_frames_is_scaled_to_the_frame():
    estimator = MotionEstimator()
    frames = clip_frames("bigbuckbunny.mp4", (1280, 720), 2)
    estimator(frames[0])
    motion = estimator(frames[1])
    assert motion is not None and motion.to_previous.shape == (360, 640, 2)
    flow, weight = TemporalFilter(0.5, CPU).weights(motion, (720, 1280))
    assert flow.shape == (2, 720, 1280) and weight.shape == (720, 1280)
    assert float(weight.min()) >= 0 and float(weight.max()) <= 0.5
    small = torch.from_numpy(motion.to_previous).permute(2, 0, 1)
    assert float(flow.abs().max()) == pytest.approx(2 * float(small.abs().max()), rel=0.05)  # pixels doubled


def test_warmup_length_follows_alpha():
    assert warmup_frames(0) == 0
    lengths = [warmup_frames(a) for a in (0.3, 0.5, 0.7, 0.8, 0.95, 1.0)]
    assert lengths == sorted(lengths) and lengths[-1] == 32
    assert 0.5 ** warmup_frames(0.5) <= 0.005 < 0.5 ** (warmup_frames(0.5) - 1)


def test_motion_of_the_first_frame_is_none_and_shapes_match():
    estimator = MotionEstimator()
    frames = clip_frames("bigbuckbunny.mp4", (160, 90), 2)
    assert estimator(frames[0]) is None
    motion = estimator(frames[1])
    assert isinstance(motion, Motion) and motion.to_previous.shape == motion.to_current.shape == (90, 160, 2)
