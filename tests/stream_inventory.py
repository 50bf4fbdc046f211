"""What a media file holds, stream by stream, and what an output lost compared with its source.

`inventory(path)` reads a file with PyAV (demux only, nothing is decoded) into plain dataclasses;
`compare(source, output)` lists, in words, everything the output lost or moved: the media path must
keep every audio/subtitle packet bit-identical at its time, every video frame at its time, chapters,
metadata and attachments. The video itself is re-encoded by styling, so only its timing is compared.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.stream import Disposition

TOLERANCE = 0.001
"""Seconds: Matroska stores times in whole milliseconds, MP4 in its track's timescale."""

# Container/stream tags that muxers write for themselves rather than carry over from the input.
TECHNICAL_TAGS = frozenset({
    "encoder", "major_brand", "minor_version", "compatible_brands", "creation_time", "duration", "handler_name",
    "vendor_id", "software", "encoded_by", "language", "title", "name", "mimetype", "filename",
})
MOV_FORMATS = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})


@dataclass(frozen=True)
class StreamInfo:
    """One demuxed stream. Times are seconds on the file's own timeline (edit lists applied by the demuxer)."""

    index: int
    type: str
    codec: str | None
    language: str | None
    title: str | None
    disposition: frozenset[str]
    time_base: Fraction | None
    start_time: float | None
    """Where the demuxer says presentation starts (MP4: after the edit list's empty edit and trim)."""
    packet_count: int
    packet_md5: str
    """md5 over every packet payload in demux order, discarded (edit-list trimmed) packets included."""
    packet_pts: tuple[float | None, ...]
    """pts (dts where pts is missing) of every packet in demux order."""
    packet_sizes: tuple[int, ...]
    discarded: int
    """Packets the demuxer flags as not presented (MP4 edit-list trim, e.g. AAC priming)."""
    frame_times: tuple[float, ...] = ()
    """Video only: sorted pts of the presented (not discarded) packets, i.e. every frame's display time."""
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        details = ", ".join(part for part in (self.language, repr(self.title) if self.title else None, self.codec)
                            if part)
        return f"{self.type} #{self.index} ({details})"

    def cue_times(self) -> tuple[float | None, ...]:
        """pts of packets that carry something: MP4 timed text fills the gaps between cues with empty samples."""
        return tuple(t for t, size in zip(self.packet_pts, self.packet_sizes, strict=True) if size > 2)


@dataclass(frozen=True)
class ChapterInfo:
    start: float
    end: float
    title: str | None


@dataclass(frozen=True)
class AttachmentInfo:
    filename: str | None
    mimetype: str | None
    md5: str
    size: int


@dataclass(frozen=True)
class Inventory:
    path: Path
    format_name: str
    metadata: dict[str, str]
    chapters: tuple[ChapterInfo, ...]
    attachments: tuple[AttachmentInfo, ...]
    streams: tuple[StreamInfo, ...]
    """Every stream but attachments, in file order."""

    def of_type(self, kind: str) -> list[StreamInfo]:
        return [stream for stream in self.streams if stream.type == kind]

    @property
    def is_mov_family(self) -> bool:
        return bool(MOV_FORMATS & set(self.format_name.split(",")))

    @property
    def origin(self) -> float:
        """Display time of the first video frame: the zero that A/V sync is measured from."""
        video = [s for s in self.of_type("video") if s.frame_times]
        return video[0].frame_times[0] if video else 0.0


def _tag(metadata: dict[str, str], *names: str) -> str | None:
    lowered = {key.lower(): value for key, value in metadata.items()}
    return next((lowered[name] for name in names if lowered.get(name)), None)


def _language(metadata: dict[str, str]) -> str | None:
    language = _tag(metadata, "language")
    return None if language in (None, "und") else language


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _payload(data: bytes, stream: av.stream.Stream) -> bytes:
    """Packet bytes without ADTS headers: MPEG-TS frames AAC with them, MP4/MKV must not (same audio data)."""
    if stream.type == "audio" and len(data) >= 7 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0 \
            and stream.codec_context is not None and stream.codec_context.codec.canonical_name == "aac":
        header = 7 if data[1] & 1 else 9  # protection_absent=0 adds a 2-byte CRC
        return data[header:]
    return data


def inventory(path: Path | str) -> Inventory:
    """Demux `path` once and describe every stream, chapter and attachment in it."""
    path = Path(path)
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type != "attachment"]
        md5s = {s.index: hashlib.md5() for s in streams}
        pts: dict[int, list[float | None]] = {s.index: [] for s in streams}
        sizes: dict[int, list[int]] = {s.index: [] for s in streams}
        shown: dict[int, list[float]] = {s.index: [] for s in streams}
        discarded = dict.fromkeys(md5s, 0)
        for packet in container.demux(*streams):
            if packet.size == 0 and packet.pts is None and packet.dts is None:
                continue  # PyAV's end-of-stream flush packet
            index = packet.stream.index
            md5s[index].update(_payload(bytes(packet), packet.stream))
            time = _seconds(packet.pts if packet.pts is not None else packet.dts, packet.time_base)
            pts[index].append(time)
            sizes[index].append(packet.size)
            if packet.is_discard:
                discarded[index] += 1
            elif time is not None:
                shown[index].append(time)
        infos = []
        for s in streams:
            metadata = dict(s.metadata)
            first = min((t for t in pts[s.index] if t is not None), default=None)
            start = _seconds(s.start_time, s.time_base)
            infos.append(StreamInfo(
                index=s.index, type=s.type,
                codec=s.codec_context.codec.canonical_name if s.codec_context is not None else None,
                language=_language(metadata),
                title=_tag(metadata, "title", "name"),  # the MP4 muxer keeps a track title as udta "name"
                disposition=frozenset(flag.name for flag in Disposition if flag.name and s.disposition & flag),
                time_base=s.time_base, start_time=start if start is not None else first,
                packet_count=len(pts[s.index]), packet_md5=md5s[s.index].hexdigest(),
                packet_pts=tuple(pts[s.index]), packet_sizes=tuple(sizes[s.index]), discarded=discarded[s.index],
                frame_times=tuple(sorted(shown[s.index])) if s.type == "video" else (), metadata=metadata,
            ))
        chapters = tuple(
            ChapterInfo(float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"]),
                        _tag(c["metadata"], "title"))
            for c in container.chapters())
        attachments = tuple(
            AttachmentInfo(_tag(dict(a.metadata), "filename"), a.mimetype, hashlib.md5(a.data).hexdigest(),
                           len(a.data))
            for a in container.streams.attachments)
        return Inventory(path=path, format_name=container.format.name, metadata=dict(container.metadata),
                         chapters=chapters, attachments=attachments, streams=tuple(infos))


# --- comparison -------------------------------------------------------------------------------------

CONVERTED = "converted "
"""Prefix of the entries of compare() that report a codec change rather than a loss."""


def split_conversions(problems: Iterable[str]) -> tuple[list[str], list[str]]:
    """(real problems, conversions) out of compare()'s answer."""
    problems = list(problems)
    return ([p for p in problems if not p.startswith(CONVERTED)], [p for p in problems if p.startswith(CONVERTED)])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:+.1f} ms"


def _times_problem(what: str, source: Iterable[float | None], output: Iterable[float | None],
                   source_zero: float, output_zero: float) -> str | None:
    """One line naming the first time that moved, with how many moved, or None when all are within TOLERANCE."""
    a, b = list(source), list(output)
    if len(a) != len(b):
        return f"{what}: {len(a)} in source, {len(b)} in output"
    moved = [(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=True))
             if (x is None) != (y is None)
             or (x is not None and y is not None and abs((y - output_zero) - (x - source_zero)) > TOLERANCE)]
    if not moved:
        return None
    i, x, y = moved[0]
    shift = "" if x is None or y is None else f" ({_ms((y - output_zero) - (x - source_zero))})"
    return f"{what}: {len(moved)} of {len(a)} moved, first #{i}: {x} s in source, {y} s in output{shift}"


def _match(source: StreamInfo, candidates: list[StreamInfo]) -> StreamInfo | None:
    """The first unused output stream of the same type, preferring same language and title, then language."""
    same_type = [c for c in candidates if c.type == source.type]
    for keys in (("language", "title"), ("language",), ()):
        for candidate in same_type:
            if all(getattr(candidate, key) == getattr(source, key) for key in keys):
                candidates.remove(candidate)
                return candidate
    return None


def _compare_stream(src: StreamInfo, out: StreamInfo, src_zero: float, out_zero: float,
                    trims_comparable: bool, type_had_default: bool) -> list[str]:
    problems = []
    label = src.label
    for key in ("language", "title"):
        if getattr(src, key) != getattr(out, key):
            problems.append(f"{label}: {key} {getattr(src, key)!r} in source, {getattr(out, key)!r} in output")
    lost, gained = src.disposition - out.disposition, out.disposition - src.disposition
    if not type_had_default:
        gained -= {"default"}  # MP4 and Matroska muxers mark the first track of a type default when none is
    if lost or gained:
        problems.append(f"{label}: disposition {sorted(src.disposition)} in source, "
                        f"{sorted(out.disposition)} in output")
    if src.codec != out.codec:
        same = (src.packet_count, src.packet_md5) == (out.packet_count, out.packet_md5)
        problems.append(f"{CONVERTED}{label}: {src.codec}->{out.codec}"
                        + (" (packets bit-identical: only the codec label changed)" if same else ""))
        if src.type == "subtitle":
            problem = _times_problem(f"{label}: cue times", src.cue_times(), out.cue_times(), src_zero, out_zero)
            problems += [problem] if problem else []
    else:
        if (src.packet_count, src.packet_md5) != (out.packet_count, out.packet_md5):
            problems.append(f"{label}: packets differ (md5 {src.packet_md5[:8]} over {src.packet_count} packets "
                            f"in source, {out.packet_md5[:8]} over {out.packet_count} in output)")
        problem = _times_problem(f"{label}: packet times", src.packet_pts, out.packet_pts, src_zero, out_zero)
        problems += [problem] if problem else []
    if src.type == "audio" and src.start_time is not None and out.start_time is not None \
            and (trims_comparable or src.codec != out.codec):
        drift = (out.start_time - out_zero) - (src.start_time - src_zero)
        if abs(drift) > TOLERANCE:
            problems.append(f"{label}: starts {src.start_time - src_zero:.6f} s after the video in source, "
                            f"{out.start_time - out_zero:.6f} s in output (A/V sync {_ms(drift)})")
    return problems


def _compare_video(source: Inventory, output: Inventory, absolute: bool) -> list[str]:
    problems = []
    src_videos, out_videos = source.of_type("video"), output.of_type("video")
    if len(src_videos) != len(out_videos):
        problems.append(f"video streams: {len(src_videos)} in source, {len(out_videos)} in output")
    for src, out in zip(src_videos, out_videos, strict=False):
        zero_src, zero_out = (0.0, 0.0) if absolute else (source.origin, output.origin)
        problem = _times_problem(f"{src.label}: frame times", src.frame_times, out.frame_times, zero_src, zero_out)
        problems += [problem] if problem else []
    return problems


def _compare_tags(source: Inventory, output: Inventory) -> list[str]:
    def tags(metadata: dict[str, str]) -> dict[str, str]:
        return {k.lower(): v for k, v in metadata.items() if k.lower() not in TECHNICAL_TAGS}

    problems = []
    src_title, out_title = _tag(source.metadata, "title"), _tag(output.metadata, "title")
    if src_title != out_title:
        problems.append(f"container title: {src_title!r} in source, {out_title!r} in output")
    out_tags = tags(output.metadata)
    problems += [f"container tag {key}: {value!r} in source, {out_tags.get(key)!r} in output"
                 for key, value in tags(source.metadata).items() if out_tags.get(key) != value]
    return problems


def _compare_chapters(source: Inventory, output: Inventory) -> list[str]:
    if len(source.chapters) != len(output.chapters):
        return [f"chapters: {len(source.chapters)} in source ({[c.title for c in source.chapters]}), "
                f"{len(output.chapters)} in output ({[c.title for c in output.chapters]})"]
    problems = []
    for n, (a, b) in enumerate(zip(source.chapters, output.chapters, strict=True)):
        if a.title != b.title:
            problems.append(f"chapter {n}: title {a.title!r} in source, {b.title!r} in output")
        if abs(a.start - b.start) > TOLERANCE or abs(a.end - b.end) > TOLERANCE:
            problems.append(f"chapter {n} ({a.title!r}): {a.start}-{a.end} s in source, {b.start}-{b.end} s in output")
    return problems


def _compare_attachments(source: Inventory, output: Inventory) -> list[str]:
    remaining = list(output.attachments)
    problems = []
    for attachment in source.attachments:
        same_name = [a for a in remaining if a.filename == attachment.filename]
        if not same_name:
            problems.append(f"attachment {attachment.filename!r} ({attachment.mimetype}): missing in output")
            continue
        twin = same_name[0]
        remaining.remove(twin)
        if twin.md5 != attachment.md5:
            problems.append(f"attachment {attachment.filename!r}: data differs ({attachment.size} bytes in source, "
                            f"{twin.size} in output)")
        if twin.mimetype != attachment.mimetype:
            problems.append(f"attachment {attachment.filename!r}: mimetype {attachment.mimetype!r} in source, "
                            f"{twin.mimetype!r} in output")
    return problems


def compare(source: Inventory | Path | str, output: Inventory | Path | str, *, absolute: bool = True) -> list[str]:
    """Everything `output` lost or moved relative to `source`, one readable line each; [] when nothing.

    Non-video streams are paired by type, language and title in order; a pair with the same codec must
    have bit-identical packets at the same times, a codec change is reported as "converted X->Y" (see
    split_conversions). Times are compared relative to the first video frame (A/V sync); with `absolute`
    that first frame must also keep its own time. Audio start times (edit lists: empty edits, priming trim)
    are compared when both files can express a trim (both MP4/MOV) or when the audio was converted.
    Data streams (e.g. the QuickTime chapter text track) are not compared: chapters are.
    """
    source = source if isinstance(source, Inventory) else inventory(source)
    output = output if isinstance(output, Inventory) else inventory(output)
    problems = _compare_video(source, output, absolute)
    src_zero, out_zero = source.origin, output.origin
    trims_comparable = source.is_mov_family and output.is_mov_family
    candidates = [s for s in output.streams if s.type not in ("video", "data")]
    for src in source.streams:
        if src.type in ("video", "data"):
            continue
        out = _match(src, candidates)
        if out is None:
            problems.append(f"{src.label}: missing in output")
            continue
        had_default = any("default" in s.disposition for s in source.of_type(src.type))
        problems += _compare_stream(src, out, src_zero, out_zero, trims_comparable, had_default)
    problems += _compare_tags(source, output)
    problems += _compare_chapters(source, output)
    problems += _compare_attachments(source, output)
    return problems
