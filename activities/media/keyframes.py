"""Which styled packets a decoder can start from, read from the bitstream itself.

A styled segment that continues an encode (scoring_job/spanning.py) has no keyframe in its MP4, so
the muxer writes no sync-sample table, and the MP4 demuxer then calls samples keyframes that are
not (every HEVC sample; most AV1 ones). Stitch re-flags each packet from its own headers, so the
stitched MP4's sync samples are the real ones (seeking, players' random access) and the preview
decodes from one.
"""

from __future__ import annotations

H264_IDR = 5
HEVC_IRAP = range(16, 24)  # BLA, IDR and CRA pictures (ITU-T H.265, 7.4.2.2)
AV1_FRAME_OBUS = (3, 6)  # OBU_FRAME_HEADER, OBU_FRAME (AV1 spec, 5.3.1)
CODECS = ("h264", "hevc", "av1", "libdav1d", "vp9")


class RandomAccess:
    """`codec`'s test for a random-access packet; H.264 and HEVC read their NAL length size from the
    stream's avcC / hvcC record."""

    def __init__(self, codec: str, extradata: bytes) -> None:
        if codec not in CODECS:
            raise ValueError(f"no keyframe test for {codec}")
        self.codec = "av1" if codec == "libdav1d" else codec
        self.length_size = _nal_length_size(self.codec, extradata) if self.codec in ("h264", "hevc") else 0

    def __call__(self, data: bytes) -> bool:
        if self.codec == "av1":
            return _av1_key_frame(data)
        if self.codec == "vp9":
            return _vp9_key_frame(data)
        return _nal_random_access(self.codec, data, self.length_size)


def _nal_length_size(codec: str, extradata: bytes) -> int:
    if codec == "h264" and len(extradata) > 4:
        return (extradata[4] & 3) + 1
    if codec == "hevc" and len(extradata) > 21:
        return (extradata[21] & 3) + 1
    raise ValueError(f"no {codec} decoder configuration record to read NAL unit lengths from")


def _nal_random_access(codec: str, data: bytes, length_size: int) -> bool:
    """An access unit (length-prefixed NAL units) holding an IDR (H.264) or IRAP (HEVC) picture."""
    offset = 0
    while offset + length_size < len(data):
        length = int.from_bytes(data[offset:offset + length_size], "big")
        header = data[offset + length_size]
        if (header & 0x1F == H264_IDR) if codec == "h264" else ((header >> 1) & 0x3F in HEVC_IRAP):
            return True
        offset += length_size + length
    return False


def _av1_key_frame(data: bytes) -> bool:
    """A temporal unit whose first frame header is a shown KEY_FRAME (uncompressed header: a zero
    show_existing_frame bit, then frame_type 0; streams with a reduced still-picture header are
    images, not video)."""
    offset = 0
    while offset < len(data):
        header = data[offset]
        kind, extension, has_size = (header >> 3) & 0xF, (header >> 2) & 1, (header >> 1) & 1
        offset += 1 + extension
        size, offset = _leb128(data, offset) if has_size else (len(data) - offset, offset)
        if kind in AV1_FRAME_OBUS and offset < len(data):
            first = data[offset]
            return not first >> 7 and (first >> 5) & 3 == 0
        offset += size
    return False


def _leb128(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 56, 7):
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    return value, offset


def _vp9_key_frame(data: bytes) -> bool:
    """VP9's uncompressed header: frame marker, profile (a reserved bit in profile 3),
    show_existing_frame, then frame_type 0 for a key frame."""
    bits = int.from_bytes(data[:2], "big") if len(data) >= 2 else 0
    profile = ((bits >> 13) & 1) | (((bits >> 12) & 1) << 1)
    position = 10 if profile == 3 else 11  # show_existing_frame: after the profile (and the reserved bit)
    show_existing = (bits >> position) & 1
    return bits >> 14 == 0b10 and not show_existing and not (bits >> (position - 1)) & 1
