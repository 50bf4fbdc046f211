"""Which styled packets a decoder can start from, read from their NAL unit headers.

A styled segment that continues an encode (scoring_job/spanning.py) has no keyframe in its MP4, so
the muxer writes no sync-sample table and the MP4 demuxer then calls every HEVC sample a keyframe.
Stitch re-flags each H.264 and HEVC packet from the bitstream itself, so the stitched MP4's sync
samples are the real ones (seeking, players' random access) and the preview decodes from one.
"""

from __future__ import annotations

H264_IDR = 5
HEVC_IRAP = range(16, 24)  # BLA, IDR and CRA pictures (ITU-T H.265, 7.4.2.2)


def nal_length_size(codec: str, extradata: bytes) -> int:
    """Bytes of each NAL unit's length prefix, from the avcC / hvcC record."""
    if codec == "h264" and len(extradata) > 4:
        return (extradata[4] & 3) + 1
    if codec == "hevc" and len(extradata) > 21:
        return (extradata[21] & 3) + 1
    raise ValueError(f"no {codec} decoder configuration record to read NAL unit lengths from")


def is_random_access(codec: str, data: bytes, length_size: int) -> bool:
    """Whether an access unit (length-prefixed NAL units) holds an IDR (H.264) or IRAP (HEVC) picture."""
    offset = 0
    while offset + length_size < len(data):
        length = int.from_bytes(data[offset:offset + length_size], "big")
        header = data[offset + length_size]
        kind = header & 0x1F if codec == "h264" else (header >> 1) & 0x3F
        if (kind == H264_IDR) if codec == "h264" else (kind in HEVC_IRAP):
            return True
        offset += length_size + length
    return False
