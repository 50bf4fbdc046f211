"""Consecutive real frames for the temporal tests, decoded by ffmpeg (the bundled clips, resized)."""

from __future__ import annotations

import subprocess

import numpy as np

from scoring_job.ffmpeg_binary import ffmpeg_binary
from tools.footage import bundled_clip


def clip_frames(name: str, size: tuple[int, int], count: int, start: int = 0) -> list[np.ndarray]:
    """Frames start..start+count-1 of a bundled clip as uint8 RGB at (width, height)."""
    width, height = size
    raw = subprocess.run(
        [ffmpeg_binary(), "-v", "error", "-i", str(bundled_clip(name)), "-vf",
         f"select=gte(n\\,{start}),scale={width}:{height}:flags=lanczos", "-fps_mode", "passthrough",
         "-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3).copy()
    if len(frames) != count:
        raise ValueError(f"{name} has fewer than {start + count} frames")
    return list(frames)
