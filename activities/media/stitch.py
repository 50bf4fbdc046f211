"""stitch: styled segments + every other stream of the upload -> output/<name>.styled.mp4 (or .mkv).

Streamed end to end: each styled segment and each segment's packet spool is read from the work
container, the packets are muxed in time order straight into the output blob (restyle.blob_writer),
and an MP4's index is moved to the front on commit, so the file is faststart without ever existing
on local disk. Memory holds one styled segment's packets at a time.

What the output keeps (checked before it is published, which is atomic):
- the styled frames carry the source's own presentation timestamps, frame by frame (variable
  frame rates and start offsets survive; the scoring job itself writes a constant rate);
- every other stream's packets, bit for bit, with their timestamps (audio start offsets and edit
  lists follow from them), language/title metadata and dispositions, the chapters, container
  metadata and attachments; streams the container cannot take are converted or listed as not kept
  (activities.media.output_streams).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import PurePosixPath

import av

from restyle.blob_writer import BlobWriter
from restyle.storage import BlobStore
from scoring_job.score import whole_chains

from ..work_layout import WorkLayout
from . import packet_spool
from .keyframes import CODECS as KEYFRAME_CODECS
from .keyframes import RandomAccess
from .media_ops import MediaError
from .mp4_boxes import hdr10_boxes, move_index_to_front
from .output_streams import OutputPlan, StreamAction
from .preview import PreviewSampler
from .segment_plan import PlannedSegment, SegmentPlan
from .source_index import media_data_zeros, open_source

FINE_TICKS = 90_000  # per second: the MPEG clock, fine enough for any frame rate


def output_names(blob_name: str, extension: str = ".mp4") -> tuple[str, str]:
    """`clips/Holiday.mov` -> (`clips/Holiday.styled.mp4`, `clips/Holiday.styled.preview.jpg`)."""
    base = str(PurePosixPath(blob_name).with_suffix(""))
    return f"{base}.styled{extension}", f"{base}.styled.preview.jpg"


class FrameTimes:
    """The source's frame timestamps, handed back to the styled frames (which are numbered, not timed)."""

    def __init__(self, data: dict) -> None:
        source_base = Fraction(*data["time_base"])
        # A coarse time base (AVI's 1/25) leaves no room between two frames for the decode
        # timestamps of a reordered stream: count in finer ticks, the same instants exactly.
        ticks = math.ceil(FINE_TICKS * source_base) if source_base > Fraction(1, FINE_TICKS) else 1
        self.time_base = source_base / ticks
        self.pts: list[int] = [pts * ticks for pts in data["pts"]]
        self.end: int = data["end"] * ticks
        self._step = self.pts[1] - self.pts[0] if len(self.pts) > 1 else self.end - self.pts[0]

    def __len__(self) -> int:
        return len(self.pts)

    def at(self, frame: int) -> int:
        """Frame `frame`'s pts; before the first frame, continued at the first interval (decode
        timestamps of reordered streams start a few frames early)."""
        return self.pts[frame] if frame >= 0 else self.pts[0] + frame * self._step

    def duration(self, frame: int) -> int:
        following = self.pts[frame + 1] if frame + 1 < len(self.pts) else self.end
        return following - self.pts[frame]


def stitch_output(store: BlobStore, blob_name: str, etag: str, job_id: str) -> dict:
    settings = store.settings
    layout = WorkLayout(job_id)
    document = store.read_json(settings.work_container, layout.plan)
    plan, output = SegmentPlan.from_dict(document), OutputPlan.from_dict(document["output"])
    times = FrameTimes(store.read_json(settings.work_container, layout.frame_times))
    video_name, preview_name = output_names(blob_name, output.extension)
    sampler = PreviewSampler(store, layout, plan)
    writer = BlobWriter(store, settings.output_container, video_name)
    try:
        with open_source(store, settings.input_container, blob_name, etag) as source, \
                av.open(writer, "w", format=output.format) as muxer:
            counts = Stitcher(store, layout, plan, output, times, source, muxer, sampler).run()
    except BaseException:
        writer.abort()
        raise
    store.write_bytes(settings.output_container, preview_name, sampler.jpeg(), "image/jpeg")
    starts = counts["track_starts"]
    video_format = output.video_format
    boxes = hdr10_boxes(video_format.master_display, video_format.content_light, vp9=video_format.codec == "vp9")
    hdr = {counts["video_track"]: boxes} if boxes else {}
    size = writer.finish(output.content_type, metadata={"job_id": job_id, "source": _ascii(blob_name)},
                         reorder=(lambda head, moov: move_index_to_front(head, moov, starts, hdr))
                         if output.format == "mp4" else None)
    return {"output_blob": f"{settings.output_container}/{video_name}",
            "preview_blob": f"{settings.output_container}/{preview_name}", "format": output.format, "bytes": size,
            "frames": counts["frames"],
            "duration": round(float((times.end - times.pts[0]) * times.time_base), 3),
            "streams": [{**_describe(action), "packets": counts["packets"].get(action.index, 0)}
                        for action in output.streams]}


class Stitcher:
    """One pass: for each segment, its styled video packets and its spooled packets, in time order."""

    def __init__(self, store: BlobStore, layout: WorkLayout, plan: SegmentPlan, output: OutputPlan, times: FrameTimes,
                 source: av.container.InputContainer, muxer: av.container.OutputContainer,
                 sampler: PreviewSampler) -> None:
        self.store, self.layout, self.plan, self.output, self.times = store, layout, plan, output, times
        self.source, self.muxer, self.sampler = source, muxer, sampler
        self.streams: dict[int, av.stream.Stream] = {}
        self.convert: set[int] = set()
        self.transcoders: dict[int, AudioTranscoder] = {}
        self.video_out: av.stream.Stream | None = None
        self.last_dts: int | None = None
        self.delay = 0  # frames every decode timestamp runs behind: the largest reorder delay of any segment

    def run(self) -> dict:
        self._check_chains()
        self.muxer.metadata.update(self.source.metadata)
        self._add_streams()
        self.delay = max(self._segment_delay(segment) for segment in self.plan.segments)
        frames, packets = 0, dict.fromkeys(self.streams, 0)
        trims = _LeadingTrims()
        for segment in self.plan.segments:
            video = self._styled_packets(segment)
            frames += len(video)
            extras = list(self._spooled_packets(segment))
            for packet in extras:
                packets[packet.stream] += 1
                trims.see(packet, self.source.streams[packet.stream].time_base)
            for *_, packet in heapq.merge(self._timed(video, 0), self._timed(extras, 1)):
                if isinstance(packet, av.Packet):
                    self.muxer.mux(packet)
                elif packet.stream in self.transcoders:
                    self.transcoders[packet.stream].feed(self._rebuilt(packet))
                else:
                    self.muxer.mux(self._rebuilt(packet))
        for transcoder in self.transcoders.values():
            transcoder.feed(None)
        if frames != len(self.times):
            raise MediaError(f"the styled segments hold {frames} frames, the source has {len(self.times)}")
        expected = self._expected_packets()
        if packets != expected:
            raise MediaError(f"packets of the other streams do not add up: kept {packets}, the source has {expected}")
        styled = next(action.index for action in self.output.streams if action.action == "styled")
        return {"frames": frames, "packets": {**packets, styled: frames}, "video_track": self.video_out.index,
                "track_starts": {self.streams[index].index: start for index, start in trims.starts().items()}}

    def _check_chains(self) -> None:
        """A styled segment that continues an encode decodes only after the piece it continues
        (scoring_job/spanning.py): refuse a job whose results mix encoder runs at such a seam."""
        container = self.store.settings.work_container
        stored = set(self.store.list_names(container, self.layout.styled_prefix))
        records = {segment.index: self.store.read_json(container, self.layout.styled_result(segment.index))
                   for segment in self.plan.segments if self.layout.styled_result(segment.index) in stored}
        whole = whole_chains(records)
        for segment in self.plan.segments:
            continues = records.get(segment.index, {}).get("continues")
            if continues is not None and segment.index not in whole:
                raise MediaError(f"styled segment {segment.index} continues an encode of segment {continues} "
                                 "that is not the one stored: the job must score it again")

    def _add_streams(self) -> None:
        template = self._open_styled(self.plan.segments[0])
        with template:
            styled = template.streams.video[0]
            # opaque: the decoder's codec (PyAV otherwise wants an encoder of its name: none is named libdav1d)
            self.video_out = self.muxer.add_stream_from_template(styled, opaque=True)
        if self.output.format == "mp4" and self.output.video_format.codec == "hevc":
            self.video_out.codec_tag = "hvc1"  # what Apple's players need; the template's tag is reset
        self.video_out.time_base = self.times.time_base
        by_index = {stream.index: stream for stream in self.source.streams}
        for action in self.output.streams:
            original = by_index[action.index]
            if action.action == "styled":
                self._copy_labels(original, self.video_out)
            elif action.action == "kept":
                self.streams[action.index] = self._copy_labels(original,
                                                               self.muxer.add_stream_from_template(original))
            elif action.action == "converted" and action.type == "audio":
                self.transcoders[action.index] = AudioTranscoder(original, self.muxer, action.output_codec)
                self.streams[action.index] = self._copy_labels(original, self.transcoders[action.index].stream)
            elif action.action == "converted":
                self.streams[action.index] = self._copy_labels(original, self.muxer.add_stream(action.output_codec))
                self.streams[action.index].time_base = original.time_base
                self.convert.add(action.index)
        for attachment in (s for s in self.source.streams if s.type == "attachment"):
            self.muxer.add_attachment(attachment.name, attachment.mimetype, bytes(attachment.data))
        chapters = self.source.chapters()
        if chapters:
            self.muxer.set_chapters(chapters)

    @staticmethod
    def _copy_labels(original: av.stream.Stream, target: av.stream.Stream) -> av.stream.Stream:
        """Language, title and the rest of the stream's tags, and its default/forced/... flags. The MP4
        demuxer reads a track's title as `name`; the muxers write `title`."""
        tags = dict(original.metadata)
        if "name" in tags and "title" not in tags:
            tags["title"] = tags.pop("name")
        target.metadata.update(tags)
        target.disposition = original.disposition
        return target

    def _open_styled(self, segment: PlannedSegment, index_only: bool = False) -> av.container.InputContainer:
        """`index_only`: the media data is served as zeros, so only the MP4's sample index is read."""
        container, name = self.store.settings.work_container, self.layout.styled(segment.index)
        zeros = media_data_zeros(self.store, container, name, None) if index_only else None
        return open_source(self.store, container, name, None, zeros)

    def _segment_delay(self, segment: PlannedSegment) -> int:
        """How many frames the segment's decode order runs ahead of its display order.

        Every styled frame's decode timestamp must lag its display slot by one delay for the whole
        track: with a delay per segment (x264 picks 1 or 2 by content) the decode timeline gained or
        lost a frame at seams, and the MP4 track duration counted an extra frame (`make demo` at 360p
        reported 3300/133 fps for its 132 frames in 5.28 s)."""
        with self._open_styled(segment, index_only=True) as styled:
            return _reorder_delay([p.pts for p in styled.demux(styled.streams.video[0]) if p.size])

    def _styled_packets(self, segment: PlannedSegment) -> list[av.Packet]:
        """The segment's styled packets, re-timed to the source frames they are (see FrameTimes)."""
        with self._open_styled(segment) as styled:
            stream = styled.streams.video[0]
            packets = [p for p in styled.demux(stream) if p.size]
            _flag_random_access(stream, packets)
            if len(packets) != segment.frames:
                raise MediaError(f"styled segment {segment.index} has {len(packets)} frames, expected "
                                 f"{segment.frames}")
            self.sampler.offer(segment, stream, packets)
        ranks = _display_ranks([p.pts for p in packets])
        if _reorder_delay([p.pts for p in packets], ranks) > self.delay:
            raise MediaError(f"styled segment {segment.index} changed while stitching (reorder delay)")
        for order, packet in enumerate(packets):
            frame = segment.start_frame + ranks[packet.pts]
            packet.pts = self.times.at(frame)
            dts = self.times.at(segment.start_frame + order - self.delay)
            if self.last_dts is not None and dts <= self.last_dts:
                dts = self.last_dts + 1
            if dts > packet.pts:
                raise MediaError(f"segment {segment.index}: frame {frame} cannot be re-timed (decode order)")
            packet.dts, self.last_dts = dts, dts
            packet.duration = self.times.duration(frame)
            packet.time_base = self.times.time_base
            packet.stream = self.video_out
        return packets

    def _spooled_packets(self, segment: PlannedSegment) -> Iterator[packet_spool.SpooledPacket]:
        data = self.store.read_bytes(self.store.settings.work_container, self.layout.extras(segment.index))
        for packet in packet_spool.decode(data):
            if packet.stream in self.streams:
                yield packet

    def _timed(self, packets, group: int) -> Iterator[tuple[float, int, int, object]]:
        for order, packet in enumerate(packets):
            if isinstance(packet, av.Packet):
                stamp, time_base = packet.dts, packet.time_base
            else:
                stamp = packet.dts if packet.dts is not None else packet.pts
                time_base = self.source.streams[packet.stream].time_base
            yield float(stamp * time_base), group, order, packet

    def _rebuilt(self, spooled: packet_spool.SpooledPacket) -> av.Packet:
        if spooled.stream in self.convert:
            spooled = _mov_text_as_subrip(spooled)
        packet = spooled.to_packet()
        packet.time_base = self.source.streams[spooled.stream].time_base
        packet.stream = self.streams[spooled.stream]
        return packet

    def _expected_packets(self) -> dict[int, int]:
        expected = dict.fromkeys(self.streams, 0)
        for segment in self.plan.segments:
            for stream, count in segment.extras.items():
                if int(stream) in expected:
                    expected[int(stream)] += count
        return expected


class AudioTranscoder:
    """Decode an audio stream no output container holds as it is and encode it into one that does,
    at the same rate and channels, timestamps carried over."""

    def __init__(self, original: av.audio.stream.AudioStream, muxer: av.container.OutputContainer,
                 codec: str) -> None:
        self._decoder = original.codec_context
        self._muxer = muxer
        rate = original.codec_context.sample_rate
        self.stream = muxer.add_stream(codec, rate=rate, layout=original.codec_context.layout)
        self.stream.time_base = Fraction(1, rate)
        formats = self.stream.codec_context.codec.audio_formats or ()
        self._resampler = av.AudioResampler(format=formats[0].name if formats else "s16",
                                            layout=original.codec_context.layout, rate=rate,
                                            frame_size=self.stream.codec_context.frame_size or None)
        self._next: int | None = None

    def feed(self, packet: av.Packet | None) -> None:
        """Audio is continuous: the first packet's time places it, samples count on from there."""
        if self._next is None and packet is not None and packet.pts is not None:
            self._next = round(packet.pts * packet.time_base * self.stream.rate)
        frames = self._decoder.decode(packet)
        for frame in frames if packet is not None else [*frames, None]:
            if frame is not None:
                frame.pts, frame.time_base = self._next or 0, self.stream.time_base
                self._next = (self._next or 0) + frame.samples
            for chunk in self._resampler.resample(frame):
                for encoded in self.stream.encode(chunk):
                    self._muxer.mux(encoded)
        if packet is None:
            for encoded in self.stream.encode(None):
                self._muxer.mux(encoded)


class _LeadingTrims:
    """Streams whose first packets the source's edit list hides (AAC priming after a start offset):
    where their content starts and how much of the media is skipped, for the MP4 edit list."""

    def __init__(self) -> None:
        self._trims: dict[int, tuple[float, float]] = {}
        self._open: set[int] = set()
        self._seen: set[int] = set()

    def see(self, packet: packet_spool.SpooledPacket, time_base: Fraction) -> None:
        if packet.stream not in self._seen:
            self._seen.add(packet.stream)
            if packet.flags & packet_spool.DISCARD and packet.pts is not None and packet.pts >= 0:
                self._open.add(packet.stream)
                self._trims[packet.stream] = (float(packet.pts * time_base), 0.0)
        if packet.stream in self._open:
            if packet.flags & packet_spool.DISCARD:
                start, trim = self._trims[packet.stream]
                self._trims[packet.stream] = (start, trim + float(packet.duration * time_base))
            else:
                self._open.discard(packet.stream)

    def starts(self) -> dict[int, tuple[float, float]]:
        """stream -> (content start s, trim s)."""
        return {stream: (start + trim, trim) for stream, (start, trim) in self._trims.items() if trim > 0}


def _flag_random_access(stream: av.video.stream.VideoStream, packets: list[av.Packet]) -> None:
    """Keyframe flags from the bitstream, not the MP4's sync samples (activities.media.keyframes)."""
    codec = stream.codec_context.name
    if codec in KEYFRAME_CODECS:
        random_access = RandomAccess(codec, bytes(stream.codec_context.extradata or b""))
        for packet in packets:
            packet.is_keyframe = random_access(bytes(packet))


def _display_ranks(pts: list[int]) -> dict[int, int]:
    """Each presentation timestamp's position in display order."""
    return {stamp: rank for rank, stamp in enumerate(sorted(pts))}


def _reorder_delay(pts_in_decode_order: list[int], ranks: dict[int, int] | None = None) -> int:
    """The largest number of frames a packet is decoded before its display position."""
    ranks = ranks or _display_ranks(pts_in_decode_order)
    return max((order - ranks[pts] for order, pts in enumerate(pts_in_decode_order)), default=0)


def _mov_text_as_subrip(packet: packet_spool.SpooledPacket) -> packet_spool.SpooledPacket:
    """A 3GPP timed-text sample is a 16-bit text length, the UTF-8 text, then style boxes: SubRip
    keeps the text."""
    length = int.from_bytes(packet.data[:2], "big")
    return packet_spool.SpooledPacket(packet.stream, packet.pts, packet.dts, packet.duration, packet.flags,
                                      packet.data[2:2 + length])


def _describe(action: StreamAction) -> dict:
    return {"index": action.index, "type": action.type, "codec": action.codec, "action": action.action,
            "output_codec": action.output_codec, "language": action.language, "title": action.title,
            **({"note": action.note} if action.note else {})}


def _ascii(text: str) -> str:
    """Blob metadata values must be ASCII."""
    return text.encode("ascii", "backslashreplace").decode()
