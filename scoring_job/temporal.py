"""Temporal stability: blend the previous styled frame, carried along the motion, into the current one.

Each frame is stylized on its own, so brush texture is re-synthesised every frame and the video
shimmers. This filter keeps a running styled frame: for frame t it warps the previous output to t
along the optical flow between the ORIGINAL frames t-1 and t, and blends it in with weight
`alpha` (the `stability` option) wherever that flow is trustworthy. It is recursive, so a texture
that stays put keeps its look over several frames, while moving or newly revealed content takes
the fresh per-frame result.

- Flow: OpenCV DIS (dense inverse search) on grey frames, both directions. It runs on the CPU on
  the decode thread, so it overlaps inference; the warp and the mask are torch ops on the
  inference device (`grid_sample`), so on CUDA the styled frames never leave the GPU for it.
- Trust: Ruder et al.'s forward-backward consistency and motion-boundary rule, and targets
  outside the previous frame. A pixel that fails keeps the per-frame result.
- Scene cuts: when less than `CUT_FRACTION` of the pixels are trusted the state resets and the
  frame is taken as stylized.
- Determinism: DIS and the torch ops are deterministic for the same frames; `alpha == 0` is never
  routed through here (the pipeline skips the filter), so it is bit-identical to per-frame output.

Segments are filtered independently (different ranks), so a segment starts with `warmup_frames`
of the previous segment's tail run through the filter and never written (see pipeline.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CUT_FRACTION = 0.5  # fewer trusted pixels than this between two frames: a scene cut, start afresh
WARMUP_RESIDUAL = 0.005  # warm-up runs until the state before the segment weighs less than this
MAX_WARMUP = 32


def warmup_frames(alpha: float) -> int:
    """Frames of lead-in a segment needs so that its start carries the same state as an interior frame:
    the recursive blend weighs a frame k steps back at most alpha**k (16 at alpha 0.72)."""
    if alpha <= 0:
        return 0
    if alpha >= 1:
        return MAX_WARMUP
    return min(MAX_WARMUP, math.ceil(math.log(WARMUP_RESIDUAL) / math.log(alpha)))


@dataclass(frozen=True)
class Motion:
    """Flow between an original frame and the one before it, float32 [h, w, 2] each, in pixels of the
    flow's own size (half the frame's above `MotionEstimator.HALF_SIZE_ABOVE`)."""

    to_previous: np.ndarray  # current pixel x is previous pixel x + to_previous[x]
    to_current: np.ndarray  # previous pixel y is current pixel y + to_current[y]


class MotionEstimator:
    """Feeds on original frames in order and gives each one its motion from the frame before.

    DIS at the 'fast' preset on grey frames, halved when wider than `HALF_SIZE_ABOVE`: DIS 'fast'
    at 1280x720 measured 21 ms per direction on one core, 6 ms at half size, and the filter's mask
    is computed at the flow's size too (4x fewer pixels).
    """

    HALF_SIZE_ABOVE = 960

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST) -> None:
        self._dis = cv2.DISOpticalFlow_create(preset)
        self._previous: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = None

    def _grey(self, frame: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
        if grey.dtype != np.uint8:  # DIS takes 8-bit grey; motion needs no more (the styled frames keep theirs)
            grey = (grey >> 8).astype(np.uint8)
        if frame.shape[1] > self.HALF_SIZE_ABOVE:
            grey = cv2.resize(grey, (frame.shape[1] // 2, frame.shape[0] // 2), interpolation=cv2.INTER_AREA)
        return grey

    def __call__(self, frame: np.ndarray) -> Motion | None:
        grey, previous = self._grey(frame), self._previous
        self._previous = grey
        if previous is None:
            return None
        return Motion(self._dis.calc(grey, previous, None), self._dis.calc(previous, grey, None))


def _base_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """Pixel coordinates as planes [2, H, W]: x, then y."""
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"))


def warp(image: torch.Tensor, flow: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample `image` [C, H, W] at x + flow(x) (flow as planes [2, H, W], pixels), bilinear, edges replicated."""
    height, width = image.shape[-2:]
    x = (grid[0] + flow[0]) * (2 / max(width - 1, 1)) - 1
    y = (grid[1] + flow[1]) * (2 / max(height - 1, 1)) - 1
    return F.grid_sample(image.unsqueeze(0), torch.stack((x, y), dim=-1).unsqueeze(0), mode="bilinear",
                         padding_mode="border", align_corners=True)[0]


def _gradient_energy(flow: torch.Tensor) -> torch.Tensor:
    """|grad u|^2 + |grad v|^2 of planes [2, H, W] by central differences (one-sided at the edges,
    like numpy.gradient), by slicing: torch.gradient took 2.5x longer on CPU at 720p."""
    d_x = torch.empty_like(flow)
    d_x[..., 1:-1] = (flow[..., 2:] - flow[..., :-2]) * 0.5
    d_x[..., 0], d_x[..., -1] = flow[..., 1] - flow[..., 0], flow[..., -1] - flow[..., -2]
    d_y = torch.empty_like(flow)
    d_y[:, 1:-1] = (flow[:, 2:] - flow[:, :-2]) * 0.5
    d_y[:, 0], d_y[:, -1] = flow[:, 1] - flow[:, 0], flow[:, -1] - flow[:, -2]
    return (d_x.square_() + d_y.square_()).sum(0)


def trusted(to_previous: torch.Tensor, to_current: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bool [H, W] from flows as planes [2, H, W]: consistent both ways (Ruder et al.:
    |w + w^|^2 <= 0.01 (|w|^2 + |w^|^2) + 0.5), not on a motion boundary
    (|grad u|^2 + |grad v|^2 <= 0.01 |w|^2 + 0.002), and landing inside the previous frame."""
    height, width = to_previous.shape[-2:]
    back = warp(to_current, to_previous, grid)
    length = to_previous.square().sum(0)
    consistent = (to_previous + back).square_().sum(0) <= 0.01 * (length + back.square().sum(0)) + 0.5
    boundary = _gradient_energy(to_previous) > 0.01 * length + 0.002
    x, y = grid[0] + to_previous[0], grid[1] + to_previous[1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return consistent & ~boundary & inside


class TemporalFilter:
    """Recursive flow-guided blend over styled frames [3, H, W] in [0, 1] on any torch device."""

    def __init__(self, alpha: float, device: torch.device) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"stability must be in (0, 1] to filter, got {alpha}")
        self.alpha = alpha
        self.device = device
        self._state: torch.Tensor | None = None
        self._grids: dict[tuple[int, int], torch.Tensor] = {}

    def reset(self) -> None:
        self._state = None

    def _grid(self, height: int, width: int) -> torch.Tensor:
        if (height, width) not in self._grids:
            self._grids[height, width] = _base_grid(height, width, self.device)
        return self._grids[height, width]

    def weights(self, motion: Motion, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(flow to the previous frame [2, H, W], blend weight [H, W]) at the frame's size; the
        weight is alpha where the flow is trusted, 0 elsewhere and everywhere at a scene cut."""
        to_previous = torch.from_numpy(motion.to_previous).to(self.device).permute(2, 0, 1)
        to_current = torch.from_numpy(motion.to_current).to(self.device).permute(2, 0, 1)
        weight = trusted(to_previous, to_current, self._grid(*to_previous.shape[-2:])).float()
        # A cut zeroes every weight, decided on the device: no host sync per frame on CUDA.
        weight = weight * (weight.mean() >= CUT_FRACTION).float() * self.alpha
        if tuple(weight.shape) != size:  # flow at a smaller size: scale it up, softening the mask's edges
            height, width = to_previous.shape[-2:]
            to_previous = F.interpolate(to_previous[None], size=size, mode="bilinear", align_corners=False)[0]
            to_previous *= torch.tensor([size[1] / width, size[0] / height], device=self.device).view(2, 1, 1)
            weight = F.interpolate(weight[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
        return to_previous, weight

    def __call__(self, styled: torch.Tensor, motion: Motion | None) -> torch.Tensor:
        styled = styled.float()
        if motion is None or self._state is None or self._state.shape != styled.shape:
            self._state = styled
            return styled
        size = tuple(styled.shape[-2:])
        to_previous, weight = self.weights(motion, size)
        blended = torch.lerp(styled, warp(self._state, to_previous, self._grid(*size)), weight)
        self._state = blended
        return blended
