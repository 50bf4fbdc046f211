"""The two things we need to know about ISO-BMFF (MP4/MOV) box layout, and nothing more.

1. Where the media data is: probe demuxes an MP4 with the `mdat` payload served as zeros, because
   every packet timestamp and flag comes from the `moov` index; so probing reads kilobytes, not
   the video.
2. How to put the `moov` in front (faststart) after a muxer wrote it at the end: insert it after
   `ftyp` and add its size to every chunk offset (`stco`/`co64`), widening 32-bit tables to 64-bit
   when an offset would overflow. This is what ffmpeg's own `+faststart` does, but without reading
   the file back, so the output can stream straight into a blob. On the way, a track's edit list
   and its sample entry's HDR10 boxes (`mdcv`, `clli`) can be written.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable

TOP_LEVEL = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp", b"sidx",
             b"moof", b"mfra", b"meta", b"pdin", b"prft", b"emsg"}
# Boxes on the way from moov to the chunk offset tables.
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
MAX_TOP_LEVEL_BOXES = 512  # fragmented files with more fragments are read whole instead


class NotIsoMedia(ValueError):
    """The bytes are not an ISO-BMFF file (or its top level is too fragmented to index cheaply)."""


def media_data_ranges(size: int, read: Callable[[int, int], bytes]) -> list[tuple[int, int]]:
    """[start, end) byte ranges of every top-level `mdat` payload, from box headers alone."""
    ranges, position, boxes = [], 0, 0
    while position + 8 <= size:
        header = read(position, min(16, size - position))
        box_size, kind = struct.unpack(">I4s", header[:8])
        header_size = 8
        if box_size == 1 and len(header) >= 16:
            box_size, header_size = struct.unpack(">Q", header[8:16])[0], 16
        elif box_size == 0:
            box_size = size - position
        if kind not in TOP_LEVEL or box_size < header_size:
            raise NotIsoMedia(f"not an ISO media box at byte {position}: {kind!r}")
        if kind == b"mdat":
            ranges.append((position + header_size, min(position + box_size, size)))
        position += box_size
        boxes += 1
        if boxes > MAX_TOP_LEVEL_BOXES:
            raise NotIsoMedia("too many top-level boxes (fragmented file)")
    return ranges


def _boxes(data: bytes):
    position = 0
    while position + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[position:position + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[position + 8:position + 16])[0], 16
        elif size == 0:
            size = len(data) - position
        if size < header or position + size > len(data):
            raise NotIsoMedia(f"truncated box {kind!r} at byte {position}")
        yield kind, data[position + header:position + size]
        position += size


def _box(kind: bytes, payload: bytes) -> bytes:
    if len(payload) + 8 <= 0xFFFFFFFF:
        return struct.pack(">I4s", len(payload) + 8, kind) + payload
    return struct.pack(">I4sQ", 1, kind, len(payload) + 16) + payload


def _shift_table(kind: bytes, payload: bytes, shift: int, wide: bool) -> bytes:
    version_flags, count = payload[:4], struct.unpack(">I", payload[4:8])[0]
    item = "Q" if kind == b"co64" else "I"
    offsets = struct.unpack(f">{count}{item}", payload[8:8 + count * struct.calcsize(item)])
    shifted = [offset + shift for offset in offsets]
    out_kind, out_item = (b"co64", "Q") if wide or kind == b"co64" else (b"stco", "I")
    return _box(out_kind, version_flags + struct.pack(f">I{count}{out_item}", count, *shifted))


def _rewrite(data: bytes, shift: int, wide: bool) -> bytes:
    out = []
    for kind, payload in _boxes(data):
        if kind in CONTAINERS:
            out.append(_box(kind, _rewrite(payload, shift, wide)))
        elif kind in (b"stco", b"co64"):
            out.append(_shift_table(kind, payload, shift, wide))
        else:
            out.append(_box(kind, payload))
    return b"".join(out)


def _largest_offset(data: bytes) -> int:
    largest = 0
    for kind, payload in _boxes(data):
        if kind in CONTAINERS:
            largest = max(largest, _largest_offset(payload))
        elif kind in (b"stco", b"co64"):
            count = struct.unpack(">I", payload[4:8])[0]
            item = "Q" if kind == b"co64" else "I"
            values = struct.unpack(f">{count}{item}", payload[8:8 + count * struct.calcsize(item)])
            largest = max([largest, *values])
    return largest


def move_index_to_front(head: bytes, trailer: bytes,
                        track_starts: dict[int, tuple[float, float]] | None = None,
                        entry_boxes: dict[int, bytes] | None = None) -> bytes:
    """`head` (ftyp, then the start of the media data) with the trailer's `moov` inserted after
    `ftyp`, chunk offsets shifted to match; the result replaces the head, the trailer goes away.
    `track_starts` edits track start times on the way (trim_track_starts), `entry_boxes` adds boxes
    to a track's sample entry (add_sample_entry_boxes)."""
    kinds = [kind for kind, _ in _boxes(trailer)]
    if kinds != [b"moov"]:
        raise NotIsoMedia(f"expected one moov box after the media data, found {kinds}")
    ftyp_size = struct.unpack(">I", head[:4])[0]
    if head[4:8] != b"ftyp":
        raise NotIsoMedia("the file does not start with ftyp")
    moov_payload = next(payload for _, payload in _boxes(trailer))
    if track_starts:
        moov_payload = trim_track_starts(moov_payload, track_starts)
    for track, boxes in (entry_boxes or {}).items():
        moov_payload = add_sample_entry_boxes(moov_payload, track, boxes)
    largest, wide = _largest_offset(moov_payload), False
    while True:  # the moov's size depends only on the table widths, not on the shift
        size = len(_box(b"moov", _rewrite(moov_payload, 0, wide)))
        if wide or largest + size <= 0xFFFFFFFF:
            return head[:ftyp_size] + _box(b"moov", _rewrite(moov_payload, size, wide)) + head[ftyp_size:]
        wide = True


def _full_box(payload: bytes) -> tuple[int, bytes]:
    return payload[0], payload[4:]


def _timescale(payload: bytes) -> int:
    """mvhd/mdhd: version, flags, then creation/modification times (32 or 64 bit), then the timescale."""
    version, body = _full_box(payload)
    return struct.unpack(">I", body[16:20] if version == 1 else body[8:12])[0]


def _find(data: bytes, *path: bytes) -> bytes | None:
    for kind, payload in _boxes(data):
        if kind == path[0]:
            return payload if len(path) == 1 else _find(payload, *path[1:])
    return None


def _edit_list(content_start: float, trim: float, movie_scale: int, media_scale: int, old: bytes) -> bytes:
    """An elst that starts presenting at `content_start` s, `trim` s into the media (priming skipped)."""
    version, body = _full_box(old)
    count = struct.unpack(">I", body[:4])[0]
    entry = struct.Struct(">QqhH" if version == 1 else ">IihH")
    entries = [entry.unpack_from(body, 4 + k * entry.size) for k in range(count)]
    media = [e for e in entries if e[1] != -1]
    if len(media) != 1:
        return old  # a real multi-part edit: not ours to change
    _, media_time, rate, fraction = media[0]
    total = sum(e[0] for e in entries)
    delay = round(content_start * movie_scale)
    new = ([(delay, -1, 1, 0)] if delay > 0 else []) + \
          [(max(total - delay, 0), media_time + round(trim * media_scale), rate, fraction)]
    wide = struct.Struct(">QqhH")
    return bytes([1, 0, 0, 0]) + struct.pack(">I", len(new)) + b"".join(wide.pack(*e) for e in new)


def trim_track_starts(moov_payload: bytes, starts: dict[int, tuple[float, float]]) -> bytes:
    """Give track k (in moov order) an edit list that presents its media from `trim` s in, at
    `content_start` s: how an MP4 says "the audio starts at 0.437 s, after 1024 priming samples".
    ffmpeg's muxer writes either the delay or the trim, never both, so we write the list ourselves."""
    movie_scale = _timescale(_find(moov_payload, b"mvhd"))
    out, track = [], 0
    for kind, payload in _boxes(moov_payload):
        if kind == b"trak" and track in starts:
            media_scale = _timescale(_find(payload, b"mdia", b"mdhd"))
            old = _find(payload, b"edts", b"elst")
            if old is not None:
                content_start, trim = starts[track]
                elst = _edit_list(content_start, trim, movie_scale, media_scale, old)
                payload = b"".join(_box(b"edts", _box(b"elst", elst)) if k == b"edts" else _box(k, p)
                                   for k, p in _boxes(payload))
        track += kind == b"trak"
        out.append(_box(kind, payload))
    return b"".join(out)


VISUAL_SAMPLE_ENTRY = 78  # bytes of a video sample entry's fixed fields, before its child boxes (ISO 14496-12)
STSD_HEADER = 8  # version, flags, entry count


def add_sample_entry_boxes(moov_payload: bytes, track: int, boxes: bytes) -> bytes:
    """Track `track` (moov order) with whole `boxes` appended to its first video sample entry
    (`hvc1`, `av01`, ...), unless that entry already holds boxes of the same kinds."""
    kinds = {kind for kind, _ in _boxes(boxes)}

    def extend(stsd: bytes) -> bytes:
        (kind, entry), *others = list(_boxes(stsd[STSD_HEADER:]))
        if kinds & {child for child, _ in _boxes(entry[VISUAL_SAMPLE_ENTRY:])}:
            return stsd
        return stsd[:STSD_HEADER] + _box(kind, entry + boxes) + b"".join(_box(k, p) for k, p in others)

    out, index = [], 0
    for kind, payload in _boxes(moov_payload):
        if kind == b"trak":
            if index == track:
                payload = _changed(payload, (b"mdia", b"minf", b"stbl", b"stsd"), extend)
            index += 1
        out.append(_box(kind, payload))
    return b"".join(out)


def _changed(data: bytes, path: tuple[bytes, ...], change: Callable[[bytes], bytes]) -> bytes:
    """`data`'s boxes with the payload at `path` passed through `change`."""
    return b"".join(_box(kind, (change(payload) if len(path) == 1 else _changed(payload, path[1:], change))
                         if kind == path[0] else payload) for kind, payload in _boxes(data))


def hdr10_boxes(master_display: str | None, content_light: str | None, vp9: bool = False) -> bytes:
    """The HDR10 boxes of a video sample entry, from x265's syntax (chromaticity in 1/50000,
    luminance in 1/10000 cd/m2): `G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)`
    and `1000,400`. `mdcv` and `clli` (ISO/IEC 14496-12) take those units, primaries in G, B, R
    order; VP9's `SmDm` and `CoLL` (its ISO-BMFF binding, version-0 full boxes) take R, G, B in 0.16
    fixed point and luminance in 24.8 (max) and 18.14 (min) fixed point."""
    out = b""
    if master_display:
        values = {name: (int(first), int(second))
                  for name, first, second in re.findall(r"(G|B|R|WP|L)\((\d+),(\d+)\)", master_display)}
        if set(values) != {"G", "B", "R", "WP", "L"}:
            raise ValueError(f"not a mastering display in x265's syntax: {master_display!r}")
        (high, low) = values["L"]
        if vp9:
            chromaticity = [round(v * 65536 / 50000) for name in ("R", "G", "B", "WP") for v in values[name]]
            out += _box(b"SmDm", bytes(4) + struct.pack(">8H2I", *chromaticity, round(high * 256 / 10000),
                                                        round(low * 16384 / 10000)))
        else:
            out += _box(b"mdcv", struct.pack(">8H2I", *[v for name in ("G", "B", "R", "WP") for v in values[name]],
                                             high, low))
    if content_light:
        light = struct.pack(">2H", *(int(v) for v in content_light.split(",")))
        out += _box(b"CoLL", bytes(4) + light) if vp9 else _box(b"clli", light)
    return out
