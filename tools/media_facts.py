"""Facts about a finished output file, for benchmarks that check what they produced (PyAV, no decoding)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)


def video_duration(path: Path) -> float:
    """From the first frame to the end of the last, in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [(p.pts, p.duration or 0) for p in container.demux(stream) if p.size and p.pts is not None]
        first, last = min(times)[0], max(times)
        return float((last[0] + last[1] - first) * stream.time_base)


def audio_md5(path: Path) -> str:
    """md5 of the first audio stream's packet payloads (equal iff the audio was copied bit for bit)."""
    with av.open(str(path)) as container:
        digest = hashlib.md5()
        for packet in container.demux(container.streams.audio[0]):
            digest.update(bytes(packet))
        return digest.hexdigest()
