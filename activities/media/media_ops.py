"""Small media helpers shared by split and stitch (PyAV; every byte moves through blob ranges)."""

from __future__ import annotations

from fractions import Fraction

import av

from scoring_job.probe import picture_facts

# Intermediate segments: near-transparent, the scoring job re-encodes them anyway.
REENCODE_CRF = 12
REENCODE_PRESET = "veryfast"


class MediaError(RuntimeError):
    """A media step failed or a check did not hold; the message says which and why."""


def video_encoder(output: av.container.OutputContainer, source: av.video.stream.VideoStream,
                  first: av.VideoFrame) -> av.video.stream.VideoStream:
    """An H.264 stream for frames like `first`, in the source's time base (timestamps kept as given)."""
    stream = output.add_stream("libx264", rate=source.average_rate or source.guessed_rate or Fraction(25))
    stream.width, stream.height = first.width, first.height
    supported = {fmt.name for fmt in stream.codec_context.codec.video_formats or ()}
    stream.pix_fmt = first.format.name if first.format.name in supported else nearest_format(first, supported)
    stream.time_base = source.time_base
    stream.codec_context.time_base = source.time_base
    stream.options = {"crf": str(REENCODE_CRF), "preset": REENCODE_PRESET}
    return stream


def nearest_format(frame: av.VideoFrame, supported: set[str]) -> str:
    """A format libx264 takes that loses neither depth (up to 10 bits) nor chroma of `frame`'s
    (e.g. 12-bit or RGB sources), so the scoring job still gets what the output keeps."""
    facts = picture_facts(frame)
    depth = "10le" if facts["bit_depth"] > 8 else ""
    for chroma in (facts["chroma"], "444"):
        if f"yuv{chroma}p{depth}" in supported:
            return f"yuv{chroma}p{depth}"
    return "yuv420p"
