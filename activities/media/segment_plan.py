"""Where to cut a video into segments, from its packet timestamps alone (no decoding).

A stream copy can only cut at a *closed* keyframe: one that no earlier-displayed frame follows in
decode order (open GOPs and B-frame reordering make other keyframes unsafe). When such keyframes
are too sparse for the segment length asked for (e.g. one keyframe per 10 s, or a single one),
the plan switches to re-encoding each segment with exact frame boundaries instead.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction

# A copy plan is used unless some segment would be this many times longer than the target.
MAX_STRETCH = 2.0


@dataclass(frozen=True)
class Packet:
    pts: int
    dts: int
    keyframe: bool


@dataclass(frozen=True)
class PlannedSegment:
    index: int
    start_frame: int  # in presentation order
    frames: int
    decode_start: int  # copy mode: packet index range in decode order; reencode mode: same as frames
    decode_end: int
    start_seconds: float  # presentation time of the first frame
    end_seconds: float  # presentation time of the first frame after the segment (or stream end)
    start_pts: int = 0  # the first frame's pts (video time base): where this segment's time span begins
    extras: dict[str, int] = field(default_factory=dict)  # stream index -> packets of other streams in the span


@dataclass(frozen=True)
class SegmentPlan:
    mode: str  # "copy" (keyframe-aligned stream copy) or "reencode" (exact frames, forced keyframes)
    segments: tuple[PlannedSegment, ...]

    @property
    def total_frames(self) -> int:
        return sum(segment.frames for segment in self.segments)

    def as_dict(self) -> dict:
        return {"mode": self.mode, "segments": [asdict(segment) for segment in self.segments]}

    @classmethod
    def from_dict(cls, data: dict) -> SegmentPlan:
        return cls(data["mode"], tuple(PlannedSegment(**segment) for segment in data["segments"]))


def target_segment_seconds(duration: float, segment_seconds: float, workers: int, per_worker: int) -> float:
    """The configured length, shortened for short videos so every worker still gets several."""
    return max(min(segment_seconds, duration / (workers * per_worker)), 1e-3)


def closed_cut_points(packets: Sequence[Packet]) -> list[int]:
    """Decode-order indices of keyframes where decode order and display order split cleanly."""
    count = len(packets)
    suffix_min = [0] * (count + 1)
    suffix_min[count] = float("inf")
    for i in range(count - 1, -1, -1):
        suffix_min[i] = min(packets[i].pts, suffix_min[i + 1])
    cuts, prefix_max = [], float("-inf")
    for i, packet in enumerate(packets):
        if i and packet.keyframe and prefix_max < packet.pts <= suffix_min[i]:
            cuts.append(i)
        prefix_max = max(prefix_max, packet.pts)
    return cuts


def plan_segments(packets: Sequence[Packet], time_base: float, target_seconds: float,
                  end_seconds: float | None = None) -> SegmentPlan:
    """Segments of about `target_seconds`, covering every frame exactly once."""
    if not packets:
        raise ValueError("no video packets to plan segments from")
    display = sorted(packet.pts for packet in packets)
    start_pts = display[0]
    stream_end = end_seconds if end_seconds is not None else (display[-1] - start_pts) * time_base
    cuts = closed_cut_points(packets)
    boundaries = _boundaries_at(cuts, packets, start_pts, time_base, target_seconds)
    plan = _copy_plan(packets, display, boundaries, start_pts, time_base, stream_end)
    longest = max(segment.end_seconds - segment.start_seconds for segment in plan.segments)
    if longest <= target_seconds * MAX_STRETCH:
        return plan
    return _reencode_plan(display, start_pts, time_base, target_seconds, stream_end)


def _boundaries_at(cuts: list[int], packets: Sequence[Packet], start_pts: int, time_base: float,
                   target_seconds: float) -> list[int]:
    """Greedy: the first closed cut at least `target_seconds` after the previous boundary."""
    chosen: list[int] = []
    last_time = 0.0
    for cut in cuts:
        time = (packets[cut].pts - start_pts) * time_base
        if time - last_time >= target_seconds - 1e-9:
            chosen.append(cut)
            last_time = time
    return chosen


def _copy_plan(packets: Sequence[Packet], display: list[int], boundaries: list[int], start_pts: int,
               time_base: float, stream_end: float) -> SegmentPlan:
    edges = [0, *boundaries, len(packets)]
    segments = []
    for index, (first, last) in enumerate(itertools.pairwise(edges)):
        start_frame = bisect_left(display, packets[first].pts)
        end_seconds = (packets[last].pts - start_pts) * time_base if last < len(packets) else stream_end
        segments.append(PlannedSegment(index, start_frame, last - first, first, last,
                                       (packets[first].pts - start_pts) * time_base, end_seconds,
                                       start_pts=packets[first].pts))
    return SegmentPlan("copy", tuple(segments))


def _reencode_plan(display: list[int], start_pts: int, time_base: float, target_seconds: float,
                   stream_end: float) -> SegmentPlan:
    """Cut every `target_seconds` of display time, at exact frames."""
    times = [(pts - start_pts) * time_base for pts in display]
    starts = [0]
    while True:
        next_start = bisect_left(times, times[starts[-1]] + target_seconds - 1e-9)
        if next_start >= len(times):
            break
        starts.append(next_start)
    edges = [*starts, len(times)]
    segments = tuple(
        PlannedSegment(index, first, last - first, first, last, times[first],
                       times[last] if last < len(times) else stream_end, start_pts=display[first])
        for index, (first, last) in enumerate(itertools.pairwise(edges))
    )
    return SegmentPlan("reencode", segments)


def boundary_keys(plan: SegmentPlan, video_time_base: Fraction, time_base: Fraction) -> list[int]:
    """Segment k+1's start in another stream's time base, rounded up: a packet stamped t belongs to
    segment bisect_right(keys, t), exactly (no float rounding at the boundaries)."""
    return [math.ceil(segment.start_pts * video_time_base / time_base) for segment in plan.segments[1:]]


def with_extras(plan: SegmentPlan, video_time_base: Fraction,
                streams: Iterable[tuple[int, Fraction, Sequence[int]]]) -> SegmentPlan:
    """Each segment also carries the packets of the other streams (audio, subtitles, ...) whose
    timestamps fall in its span: split copies them out of the same byte range, stitch puts them back."""
    counts: list[dict[str, int]] = [{} for _ in plan.segments]
    for index, time_base, times in streams:
        keys = boundary_keys(plan, video_time_base, time_base)
        for time in times:
            bucket = counts[bisect_right(keys, time)]
            bucket[str(index)] = bucket.get(str(index), 0) + 1
    return replace(plan, segments=tuple(replace(segment, extras=extra)
                                        for segment, extra in zip(plan.segments, counts, strict=True)))


def split_units(plan: SegmentPlan, packets: Sequence[Packet]) -> list[list[int]]:
    """[first, last) segment ranges, one split activity each. A copy segment is its own unit; exact
    re-encoded segments that must decode from the same keyframe share one, so that no byte of the
    source is read twice however sparse its keyframes are."""
    if plan.mode == "copy":
        return [[segment.index, segment.index + 1] for segment in plan.segments]
    keyframes = sorted(packet.pts for packet in packets if packet.keyframe)
    units: list[list[int]] = []
    previous = None
    for segment in plan.segments:
        position = bisect_right(keyframes, segment.start_pts) - 1
        seek_from = keyframes[position] if position >= 0 else None
        if units and seek_from == previous:
            units[-1][1] = segment.index + 1
        else:
            units.append([segment.index, segment.index + 1])
        previous = seek_from
    return units
