"""split: cut one unit of planned segments out of the upload, reading only its byte range, once.

The source is read through ranges pinned to the ETag probe saw; each segment's video is streamed
into work/<job>/segments/ as Matroska (stream copy at a closed keyframe, or an exact re-encode
when keyframes are too sparse) and the packets of every other stream whose timestamps fall in
the segment's span go to work/<job>/extras/. Nothing is written to local disk, so an activity's
scratch use does not depend on the video at all.

A demuxer's seek lands at or before the asked-for keyframe for MP4 (exact index), but only near it
for formats without a full index (MPEG-TS, some Matroska): a pass that finds it started too late
(the segment's first frame, or some packet probe counted in the span, never came) is redone from an
earlier point. Probe's packet counts make that check exact.
"""

from __future__ import annotations

from bisect import bisect_right
from fractions import Fraction

import av

from restyle.blob_writer import BlobWriter
from restyle.storage import BlobStore
from scoring_job.probe import main_video_stream

from ..work_layout import WorkLayout
from . import packet_spool
from .media_ops import MediaError, video_encoder
from .segment_plan import PlannedSegment, SegmentPlan, boundary_keys
from .source_index import open_source

# How far before the segment a retry seeks, in seconds; None reads from the start of the file.
SEEK_BACKOFF = (0.0, 2.0, 10.0, 60.0, None)
SEGMENT_FORMAT, SEGMENT_TYPE = "matroska", "video/x-matroska"


class StartedTooLate(Exception):
    """The pass began after something the unit needs: seek earlier."""


def split_unit(store: BlobStore, blob_name: str, etag: str, job_id: str, first: int, last: int) -> dict:
    """Segments [first, last) of the plan: video segments + other-stream packets, frame counts checked."""
    settings = store.settings
    layout = WorkLayout(job_id)
    plan = SegmentPlan.from_dict(store.read_json(settings.work_container, layout.plan))
    segments = plan.segments[first:last]
    for back in SEEK_BACKOFF if first else (None,):
        try:
            with open_source(store, settings.input_container, blob_name, etag) as source:
                extras = _cut(store, layout, plan, segments, source, back)
            break
        except StartedTooLate:
            if back is None:
                raise MediaError(f"segments {first}-{last - 1}: the source ended before everything probe "
                                 "counted in them was read") from None
    for segment, packets in zip(segments, extras, strict=True):
        store.write_bytes(settings.work_container, layout.extras(segment.index), packet_spool.encode(packets),
                          "application/octet-stream")
    return {"first": first, "last": last, "frames": sum(s.frames for s in segments), "mode": plan.mode,
            "extra_packets": sum(len(packets) for packets in extras)}


def _cut(store: BlobStore, layout: WorkLayout, plan: SegmentPlan, segments: tuple[PlannedSegment, ...],
         source: av.container.InputContainer, back: float | None) -> list[list[packet_spool.SpooledPacket]]:
    video = main_video_stream(source)
    if back is not None:
        source.seek(max(0, segments[0].start_pts - round(back / video.time_base)), stream=video, backward=True)
    collector = ExtrasCollector(plan, segments, video.time_base, source)
    cutter_type = CopyCutter if plan.mode == "copy" else ReencodeCutter
    with cutter_type(store, layout, segments, video) as cutter:
        for packet in source.demux():
            if packet.stream.index == video.index:
                cutter.feed(packet)
            else:
                collector.feed(packet)
            if cutter.done and collector.done:
                break
        cutter.finish()
    if not collector.done:
        raise StartedTooLate
    return collector.buckets


class ExtrasCollector:
    """Other streams' packets of the unit's segments, bucketed by timestamp, counted against the plan."""

    def __init__(self, plan: SegmentPlan, segments: tuple[PlannedSegment, ...], video_time_base: Fraction,
                 source: av.container.InputContainer) -> None:
        self._first = segments[0].index
        self._expected = [{int(k): v for k, v in segment.extras.items()} for segment in segments]
        self._got = [dict.fromkeys(expected, 0) for expected in self._expected]
        self._keys = {s.index: boundary_keys(plan, video_time_base, s.time_base) for s in source.streams}
        self.buckets: list[list[packet_spool.SpooledPacket]] = [[] for _ in segments]
        self._missing = sum(sum(expected.values()) for expected in self._expected)

    @property
    def done(self) -> bool:
        return self._missing == 0

    def feed(self, packet: av.Packet) -> None:
        stamp = packet.dts if packet.dts is not None else packet.pts
        if stamp is None or (not packet.size and packet.pts is None):
            return
        position = bisect_right(self._keys[packet.stream.index], stamp) - self._first
        if not 0 <= position < len(self.buckets):
            return
        got = self._got[position]
        stream = packet.stream.index
        if got.get(stream, 0) >= self._expected[position].get(stream, 0):
            raise MediaError(f"stream {stream} has more packets in segment {position + self._first} than probe "
                             "counted (the demuxer disagrees with itself)")
        got[stream] += 1
        self._missing -= 1
        self.buckets[position].append(packet_spool.SpooledPacket.of(packet))


class _Cutter:
    """Writes the unit's video segments as Matroska blobs; `done` once every frame is out."""

    def __init__(self, store: BlobStore, layout: WorkLayout, segments: tuple[PlannedSegment, ...],
                 video: av.video.stream.VideoStream) -> None:
        self._store, self._layout, self._segments, self._video = store, layout, segments, video
        self._current = 0
        self._open: tuple[BlobWriter, av.container.OutputContainer] | None = None
        self.done = False

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace) -> None:
        if self._open is not None:  # failed mid-segment: nothing of it becomes visible
            self._open[0].abort()

    def _start_output(self) -> av.container.OutputContainer:
        segment = self._segments[self._current]
        writer = BlobWriter(self._store, self._store.settings.work_container, self._layout.segment(segment.index))
        output = av.open(writer, "w", format=SEGMENT_FORMAT)
        self._open = (writer, output)
        return output

    def _finish_output(self, frames: int) -> None:
        writer, output = self._open
        output.close()
        segment = self._segments[self._current]
        if frames != segment.frames:
            writer.abort()
            raise MediaError(f"segment {segment.index} has {frames} frames, the plan says {segment.frames}")
        writer.finish(SEGMENT_TYPE)
        self._open = None
        self._current += 1
        self.done = self._current == len(self._segments)

    def finish(self) -> None:
        if not self.done:
            raise StartedTooLate


class CopyCutter(_Cutter):
    """Stream copy from the segment's closed keyframe: the next `frames` packets in decode order."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._stream = None
        self._count = 0
        self._offset = 0

    def feed(self, packet: av.Packet) -> None:
        if self.done or not packet.size or packet.pts is None:
            return
        segment = self._segments[self._current]
        if self._stream is None:
            if packet.pts != segment.start_pts:
                if packet.is_keyframe and packet.pts > segment.start_pts:
                    raise StartedTooLate
                return
            output = self._start_output()
            # opaque: the stream takes the decoder's codec; PyAV otherwise looks for an encoder of the
            # decoder's name, and there is none named libdav1d (AV1)
            self._stream = output.add_stream_from_template(self._video, opaque=True)
            self._offset = packet.dts if packet.dts is not None else packet.pts
        packet.pts -= self._offset
        if packet.dts is not None:
            packet.dts -= self._offset
        packet.stream = self._stream
        self._open[1].mux(packet)
        self._count += 1
        if self._count == segment.frames:
            self._finish_output(self._count)
            self._stream, self._count = None, 0


class ReencodeCutter(_Cutter):
    """Decode from the keyframe before the unit, re-encode each segment's exact frames (keyframe first)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._starts = [segment.start_pts for segment in self._segments]
        self._encoder = None
        self._count = 0
        self._first_seen = False

    def feed(self, packet: av.Packet) -> None:
        if self.done:
            return
        for frame in self._video.codec_context.decode(packet):
            self._take(frame)

    def finish(self) -> None:
        if not self.done:
            for frame in self._video.codec_context.decode(None):
                self._take(frame)
        super().finish()

    def _take(self, frame: av.VideoFrame) -> None:
        if self.done or frame.pts is None:
            return
        if not self._first_seen:
            self._first_seen = True
            if frame.pts > self._starts[0]:
                raise StartedTooLate
        position = bisect_right(self._starts, frame.pts) - 1
        if position < self._current:
            return  # before the unit (decoding starts at the keyframe before it)
        if position > self._current:
            segment = self._segments[self._current]
            raise MediaError(f"segment {segment.index} has {self._count} frames, the plan says {segment.frames}")
        if self._encoder is None:
            output = self._start_output()
            self._encoder = video_encoder(output, self._video, frame)
            self._base = frame.pts
        frame.pts -= self._base
        frame.pict_type = av.video.frame.PictureType.NONE
        for packet in self._encoder.encode(frame):
            self._open[1].mux(packet)
        self._count += 1
        if self._count == self._segments[self._current].frames:
            self._close_segment()

    def _close_segment(self) -> None:
        for packet in self._encoder.encode(None):
            self._open[1].mux(packet)
        self._finish_output(self._count)
        self._encoder, self._count = None, 0
