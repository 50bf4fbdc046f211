"""Before/after preview: a few frames of the source above the same frames of the styled video."""

from __future__ import annotations

import subprocess
from pathlib import Path

import ffmpeg

from .ffmpeg_binary import ffmpeg_binary
from .files import partial_path

TILE_WIDTH = 320


def _sample_row(path: Path, frame_numbers: list[int]):
    picks = "+".join(f"eq(n,{n})" for n in frame_numbers)  # ffmpeg-python escapes the commas
    return (
        ffmpeg.input(str(path)).video.filter("select", picks)
        .filter("scale", TILE_WIDTH, -2).filter("tile", f"{len(frame_numbers)}x1")
    )


def write_preview(source: Path, styled: Path, destination: Path, frame_count: int, tiles: int = 3) -> Path:
    """JPEG of `tiles` evenly spaced frames: originals on top, styled below (same frame numbers)."""
    tiles = max(1, min(tiles, frame_count))
    frame_numbers = sorted({(frame_count * (2 * k + 1)) // (2 * tiles) for k in range(tiles)})
    # tile needs exactly as many frames as cells, so the set above never shrinks below `tiles` here
    stacked = ffmpeg.filter([_sample_row(source, frame_numbers), _sample_row(styled, frame_numbers)], "vstack")
    partial = partial_path(destination).with_suffix(".jpg")
    args = stacked.output(str(partial), vframes=1, **{"q:v": 3}).global_args(
        "-nostdin", "-hide_banner", "-loglevel", "error", "-y"
    ).compile(cmd=ffmpeg_binary())
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"preview failed: {done.stderr.strip()[-500:]}")
    partial.replace(destination)
    return destination
