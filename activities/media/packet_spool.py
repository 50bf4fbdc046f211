"""A segment's packets of the other streams (audio, subtitles, data), as split hands them to stitch.

No media container holds every codec (Matroska refuses mov_text, MP4 refuses most subtitle
formats), so the packets travel in this minimal framing instead: stream index, timestamps,
duration, flags, payload. Stitch rebuilds each packet bit for bit and muxes it with the stream's
own codec parameters, which it takes from the source's header. Packet side data is not carried
(the MP4 muxer derives edit lists from the timestamps, which are kept).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import av

MAGIC = b"restyle-packets-1\n"
_RECORD = struct.Struct(">iqqqBI")
_NO_TIME = -(2**63)  # libav's AV_NOPTS_VALUE
KEYFRAME, DISCARD = 1, 2


@dataclass(frozen=True)
class SpooledPacket:
    stream: int
    pts: int | None
    dts: int | None
    duration: int
    flags: int
    data: bytes

    @classmethod
    def of(cls, packet: av.Packet) -> SpooledPacket:
        flags = (KEYFRAME if packet.is_keyframe else 0) | (DISCARD if packet.is_discard else 0)
        return cls(packet.stream.index, packet.pts, packet.dts, packet.duration or 0, flags, bytes(packet))

    def to_packet(self) -> av.Packet:
        packet = av.Packet(self.data)
        packet.pts, packet.dts, packet.duration = self.pts, self.dts, self.duration
        packet.is_keyframe = bool(self.flags & KEYFRAME)
        return packet  # DISCARD is recorded but cannot be set on a PyAV packet; muxers ignore it


def encode(packets: Iterable[SpooledPacket]) -> bytes:
    parts = [MAGIC]
    for p in packets:
        parts.append(_RECORD.pack(p.stream, _NO_TIME if p.pts is None else p.pts, _NO_TIME if p.dts is None else p.dts,
                                  p.duration, p.flags, len(p.data)))
        parts.append(p.data)
    return b"".join(parts)


def decode(data: bytes) -> Iterator[SpooledPacket]:
    if not data.startswith(MAGIC):
        raise ValueError("not a packet spool (wrong magic)")
    position = len(MAGIC)
    while position < len(data):
        stream, pts, dts, duration, flags, size = _RECORD.unpack_from(data, position)
        position += _RECORD.size
        yield SpooledPacket(stream, None if pts == _NO_TIME else pts, None if dts == _NO_TIME else dts, duration,
                            flags, data[position:position + size])
        position += size
    if position != len(data):
        raise ValueError("packet spool is truncated")
