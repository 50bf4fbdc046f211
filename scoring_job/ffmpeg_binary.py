"""Locate the ffmpeg executable: no apt install needed on CI, Functions hosts or Azure ML nodes."""

from __future__ import annotations

import os
import shutil
from functools import cache


class FfmpegNotFoundError(RuntimeError):
    """No usable ffmpeg binary could be found."""


@cache
def ffmpeg_binary() -> str:
    """Path of ffmpeg: $FFMPEG_BINARY when set, else the imageio-ffmpeg wheel's, else PATH's."""
    explicit = os.environ.get("FFMPEG_BINARY")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise FfmpegNotFoundError(f"FFMPEG_BINARY={explicit} is not an executable file")
        return explicit
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        pass
    on_path = shutil.which("ffmpeg")
    if on_path is None:
        raise FfmpegNotFoundError("ffmpeg not found: install imageio-ffmpeg, put ffmpeg on PATH or set FFMPEG_BINARY")
    return on_path
