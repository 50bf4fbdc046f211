"""Raw RGB frames in and out of ffmpeg through pipes (ffmpeg-python builds the command lines).

Decoding keeps every decoded frame (`-fps_mode passthrough`: no duplicated or dropped frames), so
frames out == frames in. Encoding is at the source's exact rational frame rate, in the codec and
picture format output_format.OutputFormat decides (libx264 8-bit 4:2:0 untagged by default); frames
are uint8 RGB, or uint16 RGB for a 10-bit output, with the source's matrix and range both ways.
On an NVIDIA GPU the bundled ffmpeg can also decode with NVDEC (`hwaccel="cuda"`; the frames still
reach us as RGB in host memory) and encode with NVENC (`EncodeOptions(codec="h264_nvenc")`); the
defaults are the CPU codecs, and bench/gpu.py measures what the hardware ones change.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from .ffmpeg_binary import ffmpeg_binary
from .output_format import ENCODERS, OutputFormat, max_crf, other_encoder_args
from .probe import VideoInfo


class FfmpegError(RuntimeError):
    """ffmpeg exited with an error; the message carries the end of its log."""


# x264 "veryfast" at CRF 18: measured on the bundled clip at 1280x720 it takes 18 ms of CPU per
# frame against 44 ms for "medium", with a smaller file; CPU not spent encoding goes to the model.
DEFAULT_PRESET = "veryfast"
NVENC_PRESETS = ("p1", "p2", "p3", "p4", "p5", "p6", "p7")  # p1 fastest ... p7 best quality
CODECS = ("libx264", "h264_nvenc", *(encoder.name for encoder in ENCODERS.values() if encoder.name != "libx264"))
HWACCELS = ("cuda",)
# What turns frame reordering off in each encoder, so that decode order is display order and one
# encode can be cut into per-segment files at any frame (spanning.SpanningWriter): no B-frames
# (x264, x265, NVENC), libvpx without look-ahead and so without hidden alt-ref frames. Not SVT-AV1:
# its low-delay structure (`pred-struct=1`) measured 2,387 against 1,551 kbit/s for an encoder per
# segment at CRF 30 on bench/output_size.py's styled frames, so AV1 segments keep an encoder each.
NO_REORDER: dict[str, dict[str, object]] = {
    "libx264": {"bf": 0}, "libx265": {"bf": 0}, "h264_nvenc": {"bf": 0},
    "libvpx-vp9": {"lag-in-frames": 0, "auto-alt-ref": 0},
}
DEFAULT_FORMAT = OutputFormat()


@dataclass(frozen=True)
class EncodeOptions:
    """`crf` is the encoder's constant quality (x264/x265 CRF 0-51, SVT-AV1/VP9 CRF 0-63), or NVENC's
    constant quality (-cq) for h264_nvenc; `preset` is x264's name, mapped for the other CPU encoders."""

    crf: int = 18
    preset: str = DEFAULT_PRESET
    codec: str = "libx264"
    # False: no frame reordering (NO_REORDER), as an encode that spans segments needs.
    reorder: bool = True

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        top = max_crf(self.codec)
        if not 0 <= self.crf <= top:
            raise ValueError(f"crf must be 0-{top} for {self.codec}, got {self.crf}")
        if self.codec == "h264_nvenc" and self.preset not in NVENC_PRESETS:
            raise ValueError(f"h264_nvenc presets are {', '.join(NVENC_PRESETS)}, got {self.preset!r}")
        if not self.reorder and self.codec not in NO_REORDER:
            raise ValueError(f"{self.codec} keeps its frame reordering here; {', '.join(NO_REORDER)} turn it off")

    def codec_args(self) -> dict[str, object]:
        """ffmpeg output options that choose and tune the video encoder."""
        if self.codec == "h264_nvenc":  # variable bitrate held at constant quality, no bitrate cap
            args = {"vcodec": "h264_nvenc", "preset": self.preset, "rc": "vbr", "cq": self.crf, "b:v": 0}
        elif self.codec != "libx264":
            args = other_encoder_args(self.codec, self.crf, self.preset)
        else:
            args = {"vcodec": "libx264", "crf": self.crf, "preset": self.preset}
        return args if self.reorder else _joined_params(args, NO_REORDER[self.codec])


def output_size(info: VideoInfo, scale: float = 1.0) -> tuple[int, int]:
    """Processing size for a scale factor; sizes other than the source's are rounded to even."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    if scale == 1:
        return info.width, info.height
    return max(2, round(info.width * scale / 2) * 2), max(2, round(info.height * scale / 2) * 2)


class _StderrTail:
    """Drains a process's stderr on a thread (a full pipe would stall ffmpeg), keeping the end."""

    def __init__(self, stream) -> None:
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream) -> None:
        for line in iter(stream.readline, b""):
            self._chunks = ([*self._chunks, line])[-20:]

    def text(self) -> str:
        self._thread.join(timeout=5)
        return b"".join(self._chunks).decode(errors="replace").strip()


def _finish(process: subprocess.Popen, stderr: _StderrTail, what: str) -> None:
    code = process.wait()
    if code != 0:
        raise FfmpegError(f"ffmpeg {what} failed (exit {code}): {stderr.text()[-1500:]}")


def decode_args(source: Path, info: VideoInfo, size: tuple[int, int], *, last_seconds: float | None = None,
                hwaccel: str | None = None, output: OutputFormat = DEFAULT_FORMAT) -> list[str]:
    """The ffmpeg command that writes `source`'s frames to stdout as raw RGB at `size`, read with the
    source's matrix and range and as deep as `output` keeps them (output_format.OutputFormat).

    `hwaccel="cuda"` decodes on the GPU (NVDEC); ffmpeg copies the frames back to host memory for
    the scale and RGB conversion, so what comes out is the same kind of frame. Without a usable
    CUDA device ffmpeg exits with an error (it does not fall back to decoding on the CPU)."""
    if hwaccel is not None and hwaccel not in HWACCELS:
        raise ValueError(f"hwaccel must be one of {', '.join(HWACCELS)} or None, got {hwaccel!r}")
    options = {} if last_seconds is None else {"sseof": -last_seconds}
    if hwaccel is not None:
        options["hwaccel"] = hwaccel
    stream = ffmpeg.input(str(source), **options).video
    if size != (info.width, info.height):
        stream = stream.filter("scale", size[0], size[1], flags="lanczos", **output.to_rgb())
    elif output.to_rgb():
        stream = stream.filter("scale", **output.to_rgb())
    return stream.output("pipe:", format="rawvideo", pix_fmt=output.rgb_pix_fmt, fps_mode="passthrough").global_args(
        "-nostdin", "-hide_banner", "-loglevel", "error"
    ).compile(cmd=ffmpeg_binary())


def encode_args(destination: Path, size: tuple[int, int], fps: str, options: EncodeOptions,
                audio_source: Path | None = None, output: OutputFormat = DEFAULT_FORMAT,
                muxer: Mapping[str, object] | None = None) -> list[str]:
    """The ffmpeg command that encodes raw RGB frames from stdin into `destination` (mp4), in `output`'s
    picture format: converted to YUV with the source's matrix and range, and tagged with its colour.
    `muxer` replaces the mp4 muxer's options (spanning.piece_muxer: one mp4 per segment)."""
    if options.codec not in (output.encoder.name, *(("h264_nvenc",) if output.codec == "h264" else ())):
        raise ValueError(f"encoder {options.codec} does not write the output's {output.encoder.label}")
    width, height = size
    pix_fmt = output.pix_fmt(width, height)
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt=output.rgb_pix_fmt, s=f"{width}x{height}", framerate=fps)
    if output.from_rgb() or output.frame_tags():
        video = video.filter("scale", **output.from_rgb()).filter("format", pix_fmt)
        video = video.filter("setparams", **output.frame_tags()) if output.frame_tags() else video
    streams = [video]
    output_args = {
        **_joined_params(options.codec_args(), output.encoder_params()),
        "pix_fmt": pix_fmt,
        "r": fps,
        **(muxer or {"format": "mp4", "movflags": "+faststart"}),
    }
    if output.codec == "hevc":
        output_args["tag:v"] = "hvc1"  # what Apple's players need; ffmpeg's default hev1 also plays elsewhere
    if audio_source is not None:
        streams.append(ffmpeg.input(str(audio_source)).audio)
        output_args["acodec"] = "copy"
    return ffmpeg.output(*streams, str(destination), **output_args).global_args(
        "-nostdin", "-hide_banner", "-loglevel", "error", "-y"
    ).compile(cmd=ffmpeg_binary())


def _joined_params(codec_args: dict[str, object], extra: Mapping[str, object]) -> dict[str, object]:
    """Encoder options with `-<x>-params` lists from both sides joined (x265's log level and HDR10)."""
    joined = dict(codec_args)
    for key, value in extra.items():
        joined[key] = f"{joined[key]}:{value}" if joined.get(key) else value
    return joined


def frame_dtype(output: OutputFormat) -> type[np.unsignedinteger]:
    """uint8 frames for an 8-bit output, uint16 (full 16-bit scale) above."""
    return np.uint8 if output.rgb_pix_fmt == "rgb24" else np.uint16


class FrameReader:
    """Iterates batches of decoded frames, [n, height, width, 3] RGB (frame_dtype), at most `batch` each."""

    def __init__(self, source: Path, info: VideoInfo, size: tuple[int, int], *,
                 last_seconds: float | None = None, hwaccel: str | None = None,
                 output: OutputFormat = DEFAULT_FORMAT) -> None:
        """`last_seconds`: decode only about that much of the end (seeking from the end, `-sseof`);
        `hwaccel`, `output`: see decode_args."""
        self.width, self.height = size
        self.dtype = frame_dtype(output)
        args = decode_args(source, info, size, last_seconds=last_seconds, hwaccel=hwaccel, output=output)
        self._process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._stderr = _StderrTail(self._process.stderr)

    def batches(self, batch: int) -> Iterator[np.ndarray]:
        while True:
            buffer = np.empty((batch, self.height, self.width, 3), dtype=self.dtype)
            count = 0
            while count < batch and self._read_frame(memoryview(buffer[count].reshape(-1)).cast("B")):
                count += 1
            if count:
                yield buffer[:count]
            if count < batch:
                _finish(self._process, self._stderr, "decode")
                return

    def _read_frame(self, view: memoryview) -> bool:
        filled = 0
        while filled < len(view):
            got = self._process.stdout.readinto(view[filled:])
            if not got:
                break
            filled += got
        if 0 < filled < len(view):
            raise FfmpegError(f"decoder stopped mid-frame ({filled} of {len(view)} bytes)")
        return filled == len(view)

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._process.stdout.close()


class FrameWriter:
    """Encodes RGB frames (frame_dtype of `output`); optionally muxes the audio of `audio_source` by copy."""

    def __init__(
        self,
        destination: Path,
        size: tuple[int, int],
        fps: str,
        options: EncodeOptions,
        audio_source: Path | None = None,
        output: OutputFormat = DEFAULT_FORMAT,
        muxer: Mapping[str, object] | None = None,
    ) -> None:
        args = encode_args(destination, size, fps, options, audio_source, output, muxer)
        # SVT-AV1 logs its banner to stderr by itself; errors only, so a failure's tail says why.
        self._process = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env={**os.environ, "SVT_LOG": "1"})
        self._stderr = _StderrTail(self._process.stderr)
        self.frames_written = 0

    def write(self, frames: np.ndarray) -> None:
        try:
            self._process.stdin.write(np.ascontiguousarray(frames).data)
        except BrokenPipeError:
            _finish(self._process, self._stderr, "encode")
            raise FfmpegError("encoder closed its input early") from None
        self.frames_written += len(frames)

    def finish(self) -> None:
        self._process.stdin.close()
        _finish(self._process, self._stderr, "encode")

    def abort(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()


def head_frames(source: Path, info: VideoInfo, size: tuple[int, int], count: int) -> np.ndarray:
    """The first `count` frames of `source` (fewer if it is shorter), uint8 [n, height, width, 3]."""
    reader = FrameReader(source, info, size)
    try:
        return next(reader.batches(max(count, 1)), np.empty((0, size[1], size[0], 3), np.uint8))
    finally:
        reader.close()


def tail_frames(source: Path, info: VideoInfo, size: tuple[int, int], count: int,
                output: OutputFormat = DEFAULT_FORMAT) -> np.ndarray:
    """The last `count` frames of `source` (fewer if it is shorter), [n, height, width, 3] (frame_dtype).

    Seeks from the end with a margin and keeps the last `count` decoded; when that came up short
    (a seek that landed late, or timestamps the duration does not match) it decodes the whole file.
    """
    wanted = min(count, info.frame_count) if info.frame_count else count
    margin = float((count + 8) / info.fps) + 0.5 if info.fps else None
    for last_seconds in (margin, None):
        reader = FrameReader(source, info, size, last_seconds=last_seconds, output=output)
        kept: deque[np.ndarray] = deque(maxlen=count)
        for batch in reader.batches(max(count, 1)):
            kept.extend(batch)  # each batch is a fresh buffer: the views stay valid
        if len(kept) >= wanted:
            break
    return np.stack(kept) if kept else np.empty((0, size[1], size[0], 3), frame_dtype(output))
