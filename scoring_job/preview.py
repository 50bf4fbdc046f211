"""Before/after preview: a few frames of the source above the same frames of the styled video."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import ffmpeg

from .ffmpeg_binary import ffmpeg_binary
from .files import partial_path

TILE_WIDTH = 320


def evenly_spaced(frame_count: int, tiles: int = 3) -> list[int]:
    """Frame numbers at the centres of `tiles` equal parts of the video (distinct, ascending)."""
    tiles = max(1, min(tiles, frame_count))
    return [(frame_count * (2 * k + 1)) // (2 * tiles) for k in range(tiles)]


def _tile(path: Path, frame_number: int):
    return ffmpeg.input(str(path)).video.filter("select", f"eq(n,{frame_number})").filter("scale", TILE_WIDTH, -2)


def write_preview(samples: Sequence[tuple[Path, Path, int]], destination: Path) -> Path:
    """JPEG with one column per (source file, styled file, frame number): original over styled."""
    columns = [ffmpeg.filter([_tile(source, n), _tile(styled, n)], "vstack") for source, styled, n in samples]
    image = columns[0] if len(columns) == 1 else ffmpeg.filter(columns, "hstack", inputs=len(columns))
    partial = partial_path(destination).with_suffix(".jpg")
    args = image.output(str(partial), vframes=1, **{"q:v": 3}).global_args(
        "-nostdin", "-hide_banner", "-loglevel", "error", "-y"
    ).compile(cmd=ffmpeg_binary())
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"preview failed: {done.stderr.strip()[-500:]}")
    partial.replace(destination)
    return destination
