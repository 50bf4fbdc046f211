"""Per-title encoder settings: the largest x264 / x265 CRF whose VMAF reaches the job's quality target.

How far CRF can go before the picture visibly changes differs by style and content, so, once per
job, a few styled sample frames are encoded at candidate CRFs and scored with the bundled ffmpeg's
libvmaf against a lossless encode of the same frames; the bisection keeps the largest CRF that
still reaches the target, and every segment of the job is encoded with it. The sample is the job's
own first frames (score._first_frames), so every rank measures the same frames and picks the same CRF.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .ffmpeg_binary import ffmpeg_binary
from .manifest import DEFAULT_QUALITY
from .output_format import OutputFormat, encoder_family
from .video_io import EncodeOptions, FfmpegError, FrameWriter

CRF_RANGE = (14, 40)  # searched; below 14 x264 spends bits on invisible detail, above 40 it smears
VMAF_MODEL = "version=vmaf_v0.6.1"  # built into the bundled libvmaf: no model file to ship
VMAF_SUBSAMPLE = 2  # score every 2nd frame: half the cost, the pooled mean barely moves


@dataclass(frozen=True)
class QualityChoice:
    """What the search chose, recorded in every segment's result JSON."""

    crf: int
    vmaf: float  # measured at `crf` on the sample
    kbps: float  # the sample's video bitrate at `crf`
    target: float
    frames: int  # sample frames encoded and scored
    tried: dict[int, float] = field(default_factory=dict)  # crf -> VMAF, in the order measured

    @property
    def reached(self) -> bool:
        return self.vmaf >= self.target

    def as_dict(self) -> dict:
        return {"crf": self.crf, "vmaf": round(self.vmaf, 2), "kbps": round(self.kbps, 1), "target": self.target,
                "reached": self.reached, "frames": self.frames,
                "tried": {str(crf): round(score, 2) for crf, score in self.tried.items()}}


FIXED_CRF = 18  # what an encoder the search does not cover uses when `crf` is not set


SEARCHED_ENCODERS = ("libx264", "libx265")


def searchable(output: OutputFormat) -> bool:
    """The search encodes the 8-bit sample with the output's encoder and scores it against x264's
    lossless CRF 0 of the same frames: for H.264 and HEVC that stands for the job's encode. A 10-bit
    output is searched on its 8-bit sample (x264 and x265 offset their quantiser by the bit depth,
    so a CRF means about the same quality at both). SVT-AV1 and libvpx keep a fixed CRF."""
    return output.encoder.name in SEARCHED_ENCODERS


def largest_crf(vmaf_at: Callable[[int], float], target: float,
                crf_range: tuple[int, int] = CRF_RANGE) -> tuple[int, dict[int, float]]:
    """Bisect for the largest CRF in `crf_range` with VMAF >= target (VMAF falls as CRF rises).

    When even the lowest CRF misses the target that lowest CRF is returned (the best on offer);
    the caller sees it in the scores. Returns (crf, {crf: vmaf} of every CRF measured)."""
    low, high = crf_range
    tried: dict[int, float] = {}

    def passes(crf: int) -> bool:
        if crf not in tried:
            tried[crf] = vmaf_at(crf)
        return tried[crf] >= target

    if not passes(low):
        return low, tried
    while low < high:  # invariant: `low` passes; everything above `high` fails
        middle = (low + high + 1) // 2
        if passes(middle):
            low = middle
        else:
            high = middle - 1
    return low, tried


def vmaf(reference: Path, distorted: Path, subsample: int = VMAF_SUBSAMPLE) -> float:
    """Pooled mean VMAF of `distorted` against `reference` (same size and frame count)."""
    with tempfile.TemporaryDirectory(prefix="restyle-vmaf-") as folder:
        log = Path(folder) / "vmaf.json"
        graph = f"[0:v][1:v]libvmaf=model={VMAF_MODEL}:n_subsample={subsample}:log_fmt=json:log_path={log}"
        args = [ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(distorted),
                "-i", str(reference), "-lavfi", graph, "-f", "null", "-"]
        process = subprocess.run(args, capture_output=True, text=True, check=False)
        if process.returncode != 0:
            raise FfmpegError(f"libvmaf failed (exit {process.returncode}): {process.stderr[-1500:]}")
        return float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])


def encode_frames(frames: np.ndarray, destination: Path, fps: str, options: EncodeOptions) -> Path:
    """Encode uint8 RGB frames [n, height, width, 3] to `destination` (mp4), 8-bit 4:2:0 in the
    family of `options.codec`."""
    writer = FrameWriter(destination, (frames.shape[2], frames.shape[1]), fps, options,
                         output=OutputFormat(codec=encoder_family(options.codec)))
    try:
        writer.write(frames)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    return destination


def choose_crf(frames: np.ndarray, fps: str, target: float = DEFAULT_QUALITY, preset: str = "veryfast",
               crf_range: tuple[int, int] = CRF_RANGE, *, codec: str = "libx264",
               reorder: bool = True) -> QualityChoice:
    """The largest CRF whose encode of `frames` (styled, RGB) with `codec` scores VMAF >= `target`;
    `reorder` False encodes without B-frames, as a job whose encoder spans seams does."""
    if len(frames) == 0:
        raise ValueError("the quality search needs at least one sample frame")
    seconds = len(frames) / Fraction(fps)
    sizes: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="restyle-quality-") as folder:
        work = Path(folder)
        reference = encode_frames(frames, work / "lossless.mp4", fps, EncodeOptions(crf=0, preset="ultrafast"))

        def vmaf_at(crf: int) -> float:
            options = EncodeOptions(crf=crf, preset=preset, codec=codec, reorder=reorder)
            candidate = encode_frames(frames, work / f"crf{crf}.mp4", fps, options)
            sizes[crf] = candidate.stat().st_size
            return vmaf(reference, candidate)

        crf, tried = largest_crf(vmaf_at, target, crf_range)
    return QualityChoice(crf=crf, vmaf=tried[crf], kbps=float(sizes[crf] * 8 / 1000 / seconds), target=target,
                         frames=len(frames), tried=tried)


def encoder_crf(crf: int | None, target: float | None, output: OutputFormat,
                search: Callable[[float], QualityChoice]) -> tuple[int, QualityChoice | None]:
    """The CRF a job or the CLI encodes with, and the search's choice when there was one: `crf` when
    the user fixed it; else, for an output the search stands for, `search(target)`; else FIXED_CRF."""
    if crf is not None:
        return crf, None
    if target is not None and searchable(output):
        choice = search(target)
        return choice.crf, choice
    return FIXED_CRF, None


def choose_crf_for(stylizer, frames: np.ndarray, fps: str, target: float, preset: str, *, codec: str = "libx264",
                   reorder: bool = True) -> QualityChoice:
    """The CRF for `target` on `frames` (decoded RGB) as `stylizer` styles them: the job's and the
    CLI's search, on the model and precision the video is then styled with, and its encoder."""
    batch = stylizer.config.batch_size
    styled = np.concatenate([stylizer(frames[start:start + batch]) for start in range(0, len(frames), batch)])
    return choose_crf(styled, fps, target, preset, codec=codec, reorder=reorder)
