"""Video facts read from the container headers with PyAV (torch-free; the Function App uses it too).

imageio-ffmpeg ships ffmpeg but not ffprobe, and ffmpeg's human-readable log is no API, so
probing goes through libav's structured metadata instead.
"""

from __future__ import annotations

import struct
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
    # What the output keeps of the picture (scoring_job/output_format.py); defaults: 8-bit 4:2:0, untagged.
    bit_depth: int = 8
    chroma: str = "420"  # chroma subsampling: "420", "422", "444" (RGB sources too), "440", "411"
    color_primaries: str | None = None  # ffmpeg's names (bt709, bt2020, ...); None = unspecified
    color_trc: str | None = None
    colorspace: str | None = None
    color_range: str | None = None  # "tv" (limited) or "pc" (full)
    has_alpha: bool = False
    master_display: str | None = None  # HDR10 mastering display, x265's syntax: G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)
    content_light: str | None = None  # HDR10 content light level "MaxCLL,MaxFALL" (cd/m2)

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
    first = _first_frame(container, stream)
    rotation = int(first.rotation) % 360
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
        **picture_facts(first),
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


def _first_frame(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame:
    """Decode the first frame: proves the stream is decodable and yields its rotation and picture facts
    (HDR10 metadata travels as frame side data, from SEI or from the container's boxes)."""
    container.seek(0)
    for frame in container.decode(stream):
        return frame
    raise av.error.InvalidDataError(0, "no decodable video frame")


# ISO/IEC 23091-2 code points (libavutil's AVCOL_*) -> ffmpeg's option names.
PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
             10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 9: "log100",
             10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10",
             15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
MATRICES = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
            9: "bt2020nc", 10: "bt2020c", 14: "ictcp"}
RANGES = {1: "tv", 2: "pc"}
_CHROMA = {(1, 1): "420", (1, 0): "422", (0, 0): "444", (0, 1): "440", (2, 0): "411"}


def picture_facts(frame: av.VideoFrame) -> dict:
    """Bit depth, chroma subsampling, colour tags and HDR10 metadata of a decoded frame."""
    name = frame.format.name
    bits = max(component.bits for component in frame.format.components)
    rgb = frame.format.is_rgb or name.startswith("gbr")
    # RGB has full chroma; grey has none to keep, so it is 4:2:0 like most video
    shifts = (0, 0) if rgb else (1, 1) if len(frame.format.components) < 3 else _chroma_shifts(frame.format)
    return {
        "bit_depth": bits,
        "chroma": _CHROMA.get(shifts, "420"),
        "color_primaries": PRIMARIES.get(frame.color_primaries),
        "color_trc": TRANSFERS.get(frame.color_trc),
        "colorspace": MATRICES.get(frame.colorspace),
        "color_range": RANGES.get(frame.color_range),
        "has_alpha": any(component.is_alpha for component in frame.format.components),
        **_hdr10(frame),
    }


def _chroma_shifts(video_format: av.VideoFormat) -> tuple[int, int]:
    """log2 of the chroma planes' subsampling, read from the planes' sizes at 64x64."""
    chroma = av.VideoFormat(video_format.name, 64, 64).components[1]
    return (64 // chroma.width).bit_length() - 1, (64 // chroma.height).bit_length() - 1


def _hdr10(frame: av.VideoFrame) -> dict:
    """HDR10 mastering display and content light level side data, in x265's syntax."""
    mastering = _side_data(frame, av.sidedata.sidedata.Type.MASTERING_DISPLAY_METADATA)
    light = _side_data(frame, av.sidedata.sidedata.Type.CONTENT_LIGHT_LEVEL)
    return {
        "master_display": _mastering_display(struct.unpack_from("<22i", mastering)) if len(mastering) >= 88 else None,
        "content_light": "{},{}".format(*struct.unpack_from("<2I", light)) if len(light) >= 8 else None,
    }


def _side_data(frame: av.VideoFrame, kind: av.sidedata.sidedata.Type) -> bytes:
    """One kind of a frame's side data, empty when absent; looked up by type, since PyAV 18
    iterates the container's types where earlier releases iterated its data."""
    data = frame.side_data.get(kind)
    return bytes(data) if data is not None else b""


def _mastering_display(values: tuple[int, ...]) -> str | None:
    """AVMasteringDisplayMetadata: R, G, B and the white point as rationals, min and max luminance
    as rationals, then has_primaries and has_luminance; x265 counts chromaticity in 1/50000 and
    luminance in 1/10000 cd/m2."""
    if not (values[20] and values[21]):
        return None

    def point(at: int, scale: int) -> int:
        return round(values[at] * scale / values[at + 1]) if values[at + 1] else 0

    rx, ry, gx, gy, bx, by, wx, wy = (point(i, 50000) for i in range(0, 16, 2))
    return f"G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({point(18, 10000)},{point(16, 10000)})"
