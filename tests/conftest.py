"""Shared fixtures: the real bundled clip, frames from it, and edge-case clips made with lavfi."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from scoring_job.ffmpeg_binary import ffmpeg_binary
from tools.footage import bundled_clip


def run_ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def bunny() -> Path:
    return bundled_clip()


@pytest.fixture(scope="session")
def real_frame(bunny: Path) -> Callable[..., np.ndarray]:
    """Frame `n` of a bundled real clip as uint8 RGB, optionally resized to (width, height)."""

    def grab(n: int, size: tuple[int, int] | None = None, clip: str = "bigbuckbunny.mp4") -> np.ndarray:
        """`size` may be omitted only for bigbuckbunny.mp4 (1280x720)."""
        filters = f"select=eq(n\\,{n})" + (f",scale={size[0]}:{size[1]}:flags=lanczos" if size else "")
        raw = subprocess.run(
            [ffmpeg_binary(), "-v", "error", "-i", str(bundled_clip(clip)), "-vf", filters, "-frames:v", "1",
             "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            capture_output=True, check=True,
        ).stdout
        width, height = size or (1280, 720)
        return np.frombuffer(raw, np.uint8).reshape(height, width, 3)

    return grab


@pytest.fixture(scope="session")
def make_clip(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Generate a test clip with ffmpeg's lavfi sources (cached per parameter set)."""
    folder = tmp_path_factory.mktemp("clips")
    made: dict[tuple, Path] = {}

    def make(frames: int = 24, size: str = "160x96", fps: str = "24", audio: bool = True,
             pix_fmt: str = "yuv420p", extra: tuple[str, ...] = ()) -> Path:
        key = (frames, size, fps, audio, pix_fmt, extra)
        if key not in made:
            path = folder / f"clip{len(made)}.mp4"
            inputs = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}"]
            if audio:
                inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
            # testsrc2 rounds odd sizes down, so the exact size comes from a scale filter
            run_ffmpeg(*inputs, "-vf", f"scale={size.replace('x', ':')}", "-frames:v", str(frames),
                       "-c:v", "libx264", "-pix_fmt", pix_fmt,
                       *(["-c:a", "aac", "-shortest"] if audio else []), *extra, str(path))
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="session")
def media_clip(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`media_clip(kind)`: an edge-case clip from tests/media_clips.py (CLIPS names the kinds), built once per run."""
    from media_clips import make_clip  # imported here so that other test runs skip PyAV

    folder = tmp_path_factory.mktemp("media_clips")
    return lambda kind: make_clip(kind, folder)



@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory):
    """Connection string of a real Azurite blob service, started for this test run and stopped after."""
    from tools.azurite import running_azurite

    with running_azurite(tmp_path_factory.mktemp("azurite")) as connection:
        yield connection


@pytest.fixture
def settings(azurite: str, tmp_path: Path, request: pytest.FixtureRequest):
    """Settings whose containers are unique to this test, so no two tests share storage state."""
    import re
    import uuid

    from restyle.settings import Settings

    tag = re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:20] + uuid.uuid4().hex[:8]
    return Settings(
        storage_connection_string=azurite,
        input_container=f"in{tag}", styles_container=f"st{tag}", work_container=f"wk{tag}",
        output_container=f"out{tag}", rejected_container=f"rej{tag}", tables_container=f"tb{tag}",
        temp_root=tmp_path / "scratch",
    )


@pytest.fixture
def store(settings):
    from restyle.storage import BlobStore

    blob_store = BlobStore.from_settings(settings)
    blob_store.ensure_containers()
    return blob_store
