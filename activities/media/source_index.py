"""Every packet's timestamps in an upload, read with as few bytes as the container allows.

MP4/MOV keep a complete sample index in `moov`: the upload is demuxed with its media data served
as zeros (restyle.blob_reader), so probing a 5 GB file reads its index and the first GOP. Other
containers (MPEG-TS, Matroska without a full index, FLV, MPEG-PS, ...) have no such index: they are
demuxed once, streamed through memory, never written to disk. Either way the result is checked
against what the demuxer itself reports, and a zero-filled pass that disagrees is redone for real.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from fractions import Fraction

import av

from restyle.blob_reader import BlobReader
from restyle.storage import BlobStore
from scoring_job.probe import main_video_stream

from .mp4_boxes import NotIsoMedia, media_data_ranges
from .output_streams import OutputPlan, kept_streams, plan_output
from .segment_plan import Packet

READ_BUFFER = 256 * 1024  # PyAV's read size: fewer Python calls than its 32 KiB default


@dataclass
class StreamPackets:
    """Demux-order timestamps of one non-video stream (dts, or pts where a format has no dts)."""

    index: int
    time_base: Fraction
    times: array = field(default_factory=lambda: array("q"))
    untimed: int = 0  # packets with no timestamp at all


@dataclass
class SourceIndex:
    video: list[Packet]
    video_time_base: Fraction
    others: dict[int, StreamPackets]
    output: OutputPlan  # decided from the same open: what the output keeps of each stream
    video_end: int | None = None  # where the last frame ends (max pts + duration), when the container says


def open_source(store: BlobStore, container: str, name: str, etag: str | None,
                zeros: list[tuple[int, int]] | None = None) -> av.container.InputContainer:
    reader = BlobReader(store, container, name, etag, zeros or ())
    return av.open(reader, "r", buffer_size=READ_BUFFER)


def read_index(store: BlobStore, container: str, name: str, etag: str) -> SourceIndex:
    zeros = media_data_zeros(store, container, name, etag)
    if zeros:
        try:
            return _demux(store, container, name, etag, zeros)
        except (av.FFmpegError, IndexMismatch):
            pass  # an unusual MP4 (e.g. a parsed codec): read it for real below
    return _demux(store, container, name, etag, None)


class IndexMismatch(ValueError):
    """A zero-filled pass gave other packets than the container's index lists."""


def media_data_zeros(store: BlobStore, container: str, name: str, etag: str | None) -> list[tuple[int, int]]:
    """The byte ranges of an MP4's media data (to be served as zeros when only its index is read);
    none for other containers. With `etag`, only of that version of the blob."""
    size = (store.pinned_info(container, name, etag) if etag else store.info(container, name)).size
    try:
        return media_data_ranges(size, lambda offset, length: store.read_range(container, name, offset, length, etag))
    except NotIsoMedia:
        return []


def _demux(store: BlobStore, container: str, name: str, etag: str,
           zeros: list[tuple[int, int]] | None) -> SourceIndex:
    with open_source(store, container, name, etag, zeros) as source:
        video_stream = main_video_stream(source)
        others = {s.index: StreamPackets(s.index, s.time_base) for s in kept_streams(source, video_stream)}
        video: list[tuple[int, int, bool, int, int]] = []
        video_end: int | None = None
        for packet in source.demux():
            if packet.stream.index == video_stream.index:
                if packet.size and packet.pts is not None:
                    dts = packet.dts if packet.dts is not None else packet.pts
                    video.append((packet.pts, dts, bool(packet.is_keyframe), packet.size, packet.pos))
                    if packet.duration:
                        video_end = max(video_end or 0, packet.pts + packet.duration)
            elif packet.stream.index in others and (packet.size or packet.pts is not None):
                track = others[packet.stream.index]
                stamp = packet.dts if packet.dts is not None else packet.pts
                if stamp is None:
                    track.untimed += 1
                else:
                    track.times.append(stamp)
        if zeros is not None:
            video = _index_checked(video, video_stream, others, source)
        packets = [Packet(pts, dts, key) for pts, dts, key, _, _ in video]
        return SourceIndex(packets, video_stream.time_base, others, plan_output(source), video_end)


def _index_checked(video, stream, others, source) -> list[tuple[int, int, bool, int, int]]:
    """Zero-filled demuxing must agree with the index entry for entry; keyframe flags come from the
    index (a parser looking at zeros can clear them)."""
    entries = [entry for entry in stream.index_entries if entry.size]
    if len(entries) != len(video):
        raise IndexMismatch(f"{len(video)} packets vs {len(entries)} index entries")
    checked = []
    for packet, entry in zip(video, entries, strict=True):
        if (packet[3], packet[4]) != (entry.size, entry.pos):
            raise IndexMismatch(f"packet at {packet[4]} does not match the index")
        checked.append((*packet[:2], bool(entry.is_keyframe), *packet[3:]))
    for track in others.values():
        listed = sum(1 for entry in source.streams[track.index].index_entries if entry.size)
        if listed and listed != len(track.times) + track.untimed:
            raise IndexMismatch(f"stream {track.index}: {len(track.times)} packets vs {listed} index entries")
    return checked
