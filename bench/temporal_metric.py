"""Temporal consistency of a styled video, measured the way the literature does (and fidelity beside it).

E_warp (Lai et al. 2018, "Learning Blind Video Temporal Consistency"): for each pair of frames
(t, t+1), optical flow is computed on the ORIGINAL frames in both directions; a pixel of frame t
counts only when the flow there is trustworthy (Ruder et al. 2016: forward-backward consistent,
not on a motion boundary, and its target inside frame t+1). The styled frame t+1 is warped back
to t along that flow, and E_warp of the pair is the squared RGB distance (values in [0, 1], summed
over the three channels as in the paper) averaged over the pixels that count; the video's E_warp
is the mean over pairs. A pair where fewer than half the pixels count is a scene cut and is skipped.

The flow here is OpenCV's Farneback, deliberately not DIS (which the mitigation in
`scoring_job.temporal` uses): a metric that shared the mitigation's flow would reward its errors.

Blurring or freezing a video lowers E_warp too, so fidelity is always reported beside it: PSNR of
the stabilised frames against the per-frame ones, and a sharpness ratio (mean variance of the
Laplacian, stabilised / per-frame).

Shared by bench/temporal.py and the tests; imports neither the Function App nor the scoring job.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

MIN_VALID_FRACTION = 0.5  # below this a pair is a scene cut (Lai et al. skip such pairs too)


@dataclass(frozen=True)
class PairFlow:
    """How frame t maps into frame t+1: `flow[y, x] = (dx, dy)`, and where that can be trusted."""

    flow: np.ndarray  # float32 [H, W, 2]
    valid: np.ndarray  # bool [H, W]: not occluded, not a motion boundary, target inside the frame

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean())


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def farneback(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense flow from `first` to `second` (uint8 RGB frames) by Farneback's polynomial expansion."""
    return cv2.calcOpticalFlowFarneback(_gray(first), _gray(second), None, pyr_scale=0.5, levels=5, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.2, flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN)


def _sampling_map(flow: np.ndarray) -> np.ndarray:
    height, width = flow.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)), axis=-1)
    return grid + flow


def warp_back(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`image` (frame t+1, any channels) sampled at x + flow(x): aligned with frame t. Bilinear."""
    points = _sampling_map(flow)
    return cv2.remap(image, points[..., 0], points[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def trusted_pixels(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s rule, plus targets outside the next frame.

    Occluded where the backward flow at the target does not bring the pixel back:
    |w + w^|^2 > 0.01 (|w|^2 + |w^|^2) + 0.5; a motion boundary where
    |grad u|^2 + |grad v|^2 > 0.01 |w|^2 + 0.002.
    """
    height, width = forward.shape[:2]
    returned = warp_back(backward, forward)
    sum_sq = np.square(forward + returned).sum(-1)
    consistent = sum_sq <= 0.01 * (np.square(forward).sum(-1) + np.square(returned).sum(-1)) + 0.5
    du_y, du_x = np.gradient(forward[..., 0])
    dv_y, dv_x = np.gradient(forward[..., 1])
    boundary = du_x**2 + du_y**2 + dv_x**2 + dv_y**2 > 0.01 * np.square(forward).sum(-1) + 0.002
    points = _sampling_map(forward)
    x, y = points[..., 0], points[..., 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return consistent & ~boundary & inside


def pair_flow(first: np.ndarray, second: np.ndarray) -> PairFlow:
    forward = farneback(first, second)
    return PairFlow(forward, trusted_pixels(forward, farneback(second, first)))


def clip_flows(originals: Sequence[np.ndarray]) -> list[PairFlow]:
    """Flows of every consecutive pair of original frames (compute once, score many outputs)."""
    return [pair_flow(a, b) for a, b in itertools.pairwise(originals)]


def pair_ewarp(styled_t: np.ndarray, styled_next: np.ndarray, flow: PairFlow) -> float | None:
    """E_warp of one pair (uint8 or [0,1] float RGB); None when the pair is a scene cut."""
    if flow.valid_fraction < MIN_VALID_FRACTION:
        return None
    scale = 255.0 if styled_t.dtype == np.uint8 else 1.0
    current = styled_t.astype(np.float32) / scale
    warped = warp_back(styled_next.astype(np.float32) / scale, flow.flow)
    return float(np.square(current - warped).sum(-1)[flow.valid].mean())


def ewarp_series(styled: Sequence[np.ndarray], flows: Sequence[PairFlow]) -> list[float | None]:
    """Per-pair E_warp (None at cuts) for styled frames whose originals gave `flows`."""
    if len(styled) != len(flows) + 1:
        raise ValueError(f"{len(styled)} styled frames for {len(flows)} flows: expected one more frame than flows")
    return [pair_ewarp(a, b, flow) for a, b, flow in zip(styled[:-1], styled[1:], flows, strict=True)]


def mean_ewarp(series: Sequence[float | None], pairs: Sequence[int] | None = None) -> float:
    """Mean over the pairs that are not cuts (optionally only the pairs indexed by `pairs`)."""
    chosen = [series[i] for i in (range(len(series)) if pairs is None else pairs)]
    values = [value for value in chosen if value is not None]
    if not values:
        raise ValueError("no pair left to average: every pair is a scene cut")
    return float(np.mean(values))


def psnr(reference: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> float:
    """PSNR (dB) of uint8 frames over the whole video (one MSE pooled over every frame)."""
    total = sum(float(np.square(a.astype(np.float32) - b.astype(np.float32)).mean()) for a, b in
                zip(reference, test, strict=True))
    mse = total / len(reference)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def sharpness(frames: Sequence[np.ndarray]) -> float:
    """Mean over frames of the variance of the Laplacian of the grey image: texture and edges."""
    return float(np.mean([cv2.Laplacian(_gray(frame), cv2.CV_64F).var() for frame in frames]))
