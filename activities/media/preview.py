"""The before/after preview: a few frames of the source above the same frames styled, as one JPEG.

Built while stitch streams the segments (the styled frames are decoded from packets already in
memory; the originals from the start of their source segment), so it costs no extra pass.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from restyle.blob_reader import BlobReader
from restyle.storage import BlobStore
from scoring_job.preview import evenly_spaced

from ..work_layout import WorkLayout
from .segment_plan import PlannedSegment, SegmentPlan

TILE_WIDTH = 320


def nth_frame(frames, n: int) -> av.VideoFrame:
    """The n-th frame (presentation order) of a decoded sequence."""
    for index, frame in enumerate(frames):
        if index == n:
            return frame
    raise ValueError(f"fewer than {n + 1} frames to take a preview frame from")


def tile(frame: av.VideoFrame) -> np.ndarray:
    height = max(2, round(frame.height * TILE_WIDTH / frame.width / 2) * 2)
    return frame.reformat(width=TILE_WIDTH, height=height, format="rgb24").to_ndarray()


class PreviewSampler:
    def __init__(self, store: BlobStore, layout: WorkLayout, plan: SegmentPlan) -> None:
        self._store, self._layout = store, layout
        self._wanted = evenly_spaced(plan.total_frames)
        self._columns: list[np.ndarray] = []
        self._since_keyframe: list[av.Packet] = []  # copies: the muxer empties the packets it is given

    def offer(self, segment: PlannedSegment, stream: av.video.stream.VideoStream, packets: list[av.Packet]) -> None:
        """Decode the wanted frames that fall in this styled segment (packets in decode order, keyframes
        flagged). A segment that continues an encode (scoring_job/spanning.py) decodes from the last
        keyframe before it, so the packets since then are kept."""
        lead = [] if packets and packets[0].is_keyframe else self._since_keyframe
        for frame in self._wanted:
            rank = frame - segment.start_frame
            if 0 <= rank < segment.frames:
                styled = nth_frame(_decode(stream, [*lead, *packets]), len(lead) + rank)
                self._columns.append(np.vstack([self._original(segment, rank), tile(styled)]))
        if not any(frame >= segment.start_frame + segment.frames for frame in self._wanted):
            self._since_keyframe = []  # nothing wanted further on
            return
        for packet in packets:
            if packet.is_keyframe:
                self._since_keyframe = []
            self._since_keyframe.append(av.Packet(bytes(packet)))

    def _original(self, segment: PlannedSegment, rank: int) -> np.ndarray:
        reader = BlobReader(self._store, self._store.settings.work_container, self._layout.segment(segment.index))
        with av.open(reader, "r", buffer_size=256 * 1024) as source:
            return tile(nth_frame(source.decode(video=0), rank))

    def jpeg(self) -> bytes:
        height = min(column.shape[0] for column in self._columns)
        image = np.hstack([column[:height] for column in self._columns])
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
        encoder.pix_fmt = "yuvj420p"
        encoder.time_base = Fraction(1, 25)
        encoder.options = {"q:v": "3"}
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:encoder.height, :encoder.width]), format="rgb24")
        packets = encoder.encode(frame.reformat(format="yuvj420p")) + encoder.encode(None)
        return b"".join(bytes(packet) for packet in packets)


def _decode(stream: av.video.stream.VideoStream, packets: list[av.Packet]):
    decoder = av.CodecContext.create(stream.codec_context.name, "r")
    decoder.extradata = stream.codec_context.extradata
    for packet in packets:
        yield from decoder.decode(packet)
    yield from decoder.decode(None)

