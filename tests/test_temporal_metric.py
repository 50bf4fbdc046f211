"""The temporal-consistency metric (bench/temporal_metric.py) against cases whose answer is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from temporal_frames import clip_frames

from bench.temporal_metric import (
    PairFlow,
    clip_flows,
    ewarp_series,
    mean_ewarp,
    pair_ewarp,
    pair_flow,
    psnr,
    sharpness,
    trusted_pixels,
)

# Frame t maps to frame t+1 by q = A p + b: a slight rotation and zoom plus a sub-pixel shift.
ANGLE, ZOOM, SHIFT = np.deg2rad(1.0), 1.01, (2.5, -1.5)
SIZE = (320, 180)


def _affine() -> np.ndarray:
    c, s = ZOOM * np.cos(ANGLE), ZOOM * np.sin(ANGLE)
    return np.array([[c, -s, SHIFT[0]], [s, c, SHIFT[1]]], dtype=np.float64)


def _true_flow(matrix: np.ndarray) -> np.ndarray:
    width, height = SIZE
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    qx = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    qy = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    return np.stack([qx - xs, qy - ys], axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def affine_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth random texture (values well inside [0, 255]) and the same texture moved by the affine map."""
    rng = np.random.default_rng(7)
    noise = rng.normal(size=(SIZE[1], SIZE[0], 3)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), 1.5)
    texture = (texture - texture.min()) / (texture.max() - texture.min()) * 160 + 48
    first = np.round(texture).astype(np.uint8)
    matrix = _affine()
    second = cv2.warpAffine(texture, matrix, SIZE, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return first, np.round(second).astype(np.uint8), _true_flow(matrix)


def test_flow_matches_the_known_affine_field(affine_pair):
    first, second, truth = affine_pair
    measured = pair_flow(first, second)
    error = np.linalg.norm(measured.flow - truth, axis=-1)
    assert measured.valid_fraction > 0.85
    assert float(error[measured.valid].mean()) < 0.1  # pixels


def test_targets_outside_the_next_frame_are_not_trusted(affine_pair):
    first, second, truth = affine_pair
    width, height = SIZE
    target_x = np.arange(width)[None, :] + truth[..., 0]
    target_y = np.arange(height)[:, None] + truth[..., 1]
    outside = (target_x < -1) | (target_x > width) | (target_y < -1) | (target_y > height)
    assert outside.sum() > 500  # the shift and zoom push a border strip out of frame
    measured = pair_flow(first, second)
    assert not measured.valid[outside].any()
    assert not trusted_pixels(truth, -truth)[outside].any()  # the rule alone, on the exact field


def test_ewarp_is_zero_for_moved_content_and_the_offset_squared_when_it_changes(affine_pair):
    first, second, truth = affine_pair
    width, height = SIZE
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    inside = (xs + truth[..., 0] >= 0) & (xs + truth[..., 0] <= width - 1)
    inside &= (ys + truth[..., 1] >= 0) & (ys + truth[..., 1] <= height - 1)
    exact = PairFlow(truth, inside)
    assert pair_ewarp(first, second, exact) < 1e-4  # rounding to uint8 and bilinear resampling only
    offset = 0.1  # the next frame 0.1 brighter in every channel: squared RGB distance 3 * 0.1^2
    brighter = np.clip(second.astype(np.float32) / 255 + offset, 0, 1)
    assert pair_ewarp(first.astype(np.float32) / 255, brighter, exact) == pytest.approx(3 * offset**2, rel=0.02)
    measured = pair_flow(first, second)
    assert pair_ewarp(first.astype(np.float32) / 255, brighter, measured) == pytest.approx(3 * offset**2, rel=0.05)


def test_the_source_video_itself_is_near_zero_and_a_cut_is_skipped():
    frames = clip_frames("bigbuckbunny.mp4", (320, 180), 12)
    flows = clip_flows(frames)
    series = ewarp_series(frames, flows)
    assert None not in series and mean_ewarp(series) < 1e-3
    noisy = [np.clip(f + np.random.default_rng(i).normal(0, 8, f.shape), 0, 255).astype(np.uint8)
             for i, f in enumerate(frames)]
    assert mean_ewarp(ewarp_series(noisy, flows)) > 10 * mean_ewarp(series)  # flicker is seen
    other = clip_frames("bikes.mp4", (320, 180), 1)[0]
    cut = pair_flow(frames[0], other)
    assert cut.valid_fraction < 0.5 and pair_ewarp(frames[0], other, cut) is None
    with pytest.raises(ValueError, match="every pair is a scene cut"):
        mean_ewarp([None, None])
    with pytest.raises(ValueError, match="one more frame than flows"):
        ewarp_series(frames, flows[:-1])


def test_fidelity_measures():
    frames = clip_frames("bigbuckbunny.mp4", (320, 180), 3)
    assert psnr(frames, frames) == float("inf")
    blurred = [cv2.GaussianBlur(f, (0, 0), 1.5) for f in frames]
    assert 20 < psnr(frames, blurred) < 40
    assert sharpness(blurred) < 0.5 * sharpness(frames)
