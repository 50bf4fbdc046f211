"""ffmpeg from the imageio-ffmpeg wheel, even when a deployment lost its executable bit."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import imageio_ffmpeg
import pytest
from imageio_ffmpeg import _utils

from scoring_job import ffmpeg_binary as lookup


@pytest.fixture
def unexecutable_wheel(tmp_path, monkeypatch):
    """The wheel's ffmpeg as a zip deployment may leave it: mode 0644, and no ffmpeg on PATH."""
    real = imageio_ffmpeg.get_ffmpeg_exe()
    folder = tmp_path / "binaries"
    folder.mkdir()
    copy = folder / _utils.FNAME_PER_PLATFORM[_utils.get_platform()]
    shutil.copyfile(real, copy)
    os.chmod(copy, 0o644)
    monkeypatch.setattr(_utils, "_get_bin_dir", lambda: str(folder))
    monkeypatch.setattr(_utils.sys, "prefix", str(tmp_path / "no-conda"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    (tmp_path / "scratch").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "scratch"))
    monkeypatch.delenv("FFMPEG_BINARY", raising=False)
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    _utils._get_ffmpeg_exe.cache_clear()
    lookup.ffmpeg_binary.cache_clear()
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    yield copy
    _utils._get_ffmpeg_exe.cache_clear()
    lookup.ffmpeg_binary.cache_clear()


def test_a_binary_without_its_executable_bit_is_copied_to_scratch_and_runs(unexecutable_wheel, tmp_path):
    found = lookup.ffmpeg_binary()
    assert found.startswith(str(tmp_path / "scratch")) and os.access(found, os.X_OK)
    assert not os.access(unexecutable_wheel, os.X_OK)  # the package itself is left as it is
    version = subprocess.run([found, "-version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("ffmpeg version")


def test_the_copy_is_reused(unexecutable_wheel):
    first = lookup.ffmpeg_binary()
    lookup.ffmpeg_binary.cache_clear()
    assert lookup.ffmpeg_binary() == first
