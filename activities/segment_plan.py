"""Where to cut a video into segments, from its packet timestamps alone (no decoding).

A stream copy can only cut at a *closed* keyframe: one that no earlier-displayed frame follows in
decode order (open GOPs and B-frame reordering make other keyframes unsafe). When such keyframes
are too sparse for the segment length asked for (e.g. one keyframe per 10 s, or a single one),
the plan switches to re-encoding each segment with exact frame boundaries instead.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import asdict, dataclass

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
                                       (packets[first].pts - start_pts) * time_base, end_seconds))
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
                       times[last] if last < len(times) else stream_end)
        for index, (first, last) in enumerate(itertools.pairwise(edges))
    )
    return SegmentPlan("reencode", segments)
