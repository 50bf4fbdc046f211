"""Video facts read from the container headers with PyAV (torch-free; the Function App uses it too).

imageio-ffmpeg ships ffmpeg but not ffprobe, and ffmpeg's human-readable log is no API, so
probing goes through libav's structured metadata instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av

# Demuxers that open still images as one-frame "videos".
_IMAGE_FORMATS = ("image2", "_pipe", "gif", "apng", "webp")


class ProbeError(ValueError):
    """The file is missing, not a video, or unreadable; the message says which."""


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as displayed, after any rotation metadata is applied
    height: int
    fps: Fraction  # average frame rate
    frame_count: int
    duration: float  # seconds
    codec: str
    pix_fmt: str | None
    rotation: int  # degrees, as stored in the container
    has_audio: bool
    audio_codec: str | None
    container: str

    @property
    def fps_text(self) -> str:
        """The frame rate as ffmpeg's exact rational form, e.g. 30000/1001."""
        return f"{self.fps.numerator}/{self.fps.denominator}"


def probe_video(path: str | Path) -> VideoInfo:
    """Read the main video stream's facts; raise ProbeError with the reason when there is none."""
    path = Path(path)
    if not path.is_file():
        raise ProbeError(f"file not found: {path}")
    if path.stat().st_size == 0:
        raise ProbeError(f"empty file (0 bytes): {path}")
    return probe_file(str(path), str(path))


def probe_file(source: str | BinaryIO, name: str, buffer_size: int = 32768, count_frames: bool = True) -> VideoInfo:
    """probe_video for an open file object (a blob read by ranges) or a path; `name` is for messages.

    Without `count_frames`, a container that does not store the frame count (Matroska, MPEG-TS) is
    not demuxed to count them: frame_count is then 0 and the caller counts from its own index."""
    try:
        with av.open(source, "r", buffer_size=buffer_size) as container:
            return _read_info(container, name, count_frames)
    except av.error.FFmpegError as error:
        raise ProbeError(f"not a readable video (corrupt or unsupported): {name}: {error}") from None


def main_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The video that gets styled: the first video stream that is not cover art (attached picture)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise ProbeError("no video stream (only cover art)")


def _read_info(container: av.container.InputContainer, path: str, count_frames: bool = True) -> VideoInfo:
    format_name = container.format.name
    if any(marker in format_name for marker in _IMAGE_FORMATS):
        raise ProbeError(f"a still image, not a video ({format_name}): {path}")
    if not container.streams.video:
        kind = "audio only" if container.streams.audio else "no video stream"
        raise ProbeError(f"not a video ({kind}): {path}")
    stream = main_video_stream(container)
    context = stream.codec_context
    if not context.width or not context.height:
        raise ProbeError(f"video stream has no frame size (corrupt header): {path}")
    fps = stream.average_rate or stream.guessed_rate
    if not fps:
        raise ProbeError(f"video stream has no frame rate: {path}")
    duration = _duration_seconds(container, stream)
    frame_count = stream.frames or (_count_packets(container, stream) if count_frames else 0)
    if frame_count <= 0 and count_frames:
        raise ProbeError(f"video stream holds no frames: {path}")
    rotation = _first_frame_rotation(container, stream)
    width, height = (context.height, context.width) if rotation % 180 == 90 else (context.width, context.height)
    audio = container.streams.audio[0] if container.streams.audio else None
    return VideoInfo(
        width=width,
        height=height,
        fps=Fraction(fps),
        frame_count=frame_count,
        duration=duration,
        codec=context.name,
        pix_fmt=context.pix_fmt,
        rotation=rotation,
        has_audio=audio is not None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        container=format_name,
    )


def _duration_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return 0.0


def _count_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Frame count for containers without an index (e.g. Matroska): demux only, no decoding."""
    return sum(1 for packet in container.demux(stream) if packet.size)


def _first_frame_rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Decode the first frame: proves the stream is decodable and yields its display rotation."""
    container.seek(0)
    for frame in container.decode(stream):
        return int(frame.rotation) % 360
    raise av.error.InvalidDataError(0, "no decodable video frame")
