"""Locate the ffmpeg executable: no apt install needed on CI, Functions hosts or Azure ML nodes."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from functools import cache
from pathlib import Path


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
    bundled = _bundled_ffmpeg()
    if bundled is not None and not os.access(bundled, os.X_OK):
        return str(executable_copy(bundled))
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        pass
    on_path = shutil.which("ffmpeg")
    if on_path is None:
        raise FfmpegNotFoundError("ffmpeg not found: install imageio-ffmpeg, put ffmpeg on PATH or set FFMPEG_BINARY")
    return on_path


def _bundled_ffmpeg() -> Path | None:
    """The binary inside the imageio-ffmpeg wheel, where imageio_ffmpeg itself looks for it."""
    try:
        from imageio_ffmpeg._utils import FNAME_PER_PLATFORM, _get_bin_dir, get_platform
    except ImportError:
        return None
    name = FNAME_PER_PLATFORM.get(get_platform())
    path = Path(_get_bin_dir(), name) if name else None
    return path if path is not None and path.is_file() else None


def executable_copy(binary: Path) -> Path:
    """A copy of `binary` with its executable bit set, in scratch space.

    A zip deployment can drop the bit (reported for Linux Consumption); the package is mounted
    read-only there, so it cannot be repaired in place. imageio_ffmpeg then skips the wheel's binary
    (its `_is_valid_exe` cannot run it) and falls back to a system ffmpeg a Functions host lacks.
    Concurrent callers each write their own temporary file and rename it over the same target."""
    folder = Path(tempfile.gettempdir()) / "restyle-ffmpeg"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / binary.name
    if target.is_file() and os.access(target, os.X_OK) and target.stat().st_size == binary.stat().st_size:
        return target
    handle, partial = tempfile.mkstemp(dir=folder, prefix=f".{binary.name}.", suffix=".partial")
    os.close(handle)
    shutil.copyfile(binary, partial)
    os.chmod(partial, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    os.replace(partial, target)
    return target
