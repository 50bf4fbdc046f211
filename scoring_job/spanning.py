"""One encoder across a rank's run of consecutive segments, cut into one mp4 per segment.

Why: a segment encoded on its own starts with a keyframe whose coding noise owes nothing to the
frame before it, so the texture pulses at every seam (bench/output_size.py: 2.3x the flicker
elsewhere at CRF 18; 1.2x, the lossless level, through one encoder). Here the frames of several
segments go through one encoder, with B-frames off so that decode order is display order, and
ffmpeg's segment muxer closes one mp4 at each segment's first frame (`-break_non_keyframes`). A
piece after the first starts with a predicted frame: it decodes only after the piece before it
from the same run, which its result records (`encode_run`, `continues`; score.complete_segments
and stitch check the chain). Progress and resumption stay per segment: a piece is finished when
the muxer lists it, and a run that fails loses only the pieces not yet listed.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from .manifest import Segment
from .output_format import OutputFormat
from .video_io import FrameWriter

RUN_PREFIX = ".run-"  # the muxer's listing, hidden beside the results


def piece_muxer(segment_frames: Sequence[int], listing: Path) -> dict[str, object]:
    """ffmpeg's segment muxer cutting after each segment's frame count, one faststart mp4 a piece;
    `listing` gets a piece's name once the piece is closed."""
    cuts = np.cumsum(segment_frames)[:-1]
    options: dict[str, object] = {"format": "segment", "segment_format": "mp4",
                                  "segment_format_options": "movflags=+faststart", "segment_list": str(listing),
                                  "segment_list_type": "flat", "break_non_keyframes": 1}
    if len(cuts):
        options["segment_frames"] = ",".join(str(int(cut)) for cut in cuts)
    return options


def packet_count(path: Path) -> int:
    """Video packets in an mp4, counted by demuxing as stitch counts them (a piece that continues
    another cannot be decoded alone, so no decode)."""
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)


class SpanningWriter:
    """Frames of `segments` (consecutive, in order) through one encoder; `finished()` says how many
    of their pieces are complete, `piece(i)` where the i-th is."""

    def __init__(self, folder: Path, segments: Sequence[Segment], size: tuple[int, int], fps: str, options,
                 output: OutputFormat) -> None:
        indices = [segment.index for segment in segments]
        if indices != list(range(indices[0], indices[0] + len(indices))):
            raise ValueError(f"a spanning encode needs consecutive segments, got {indices}")
        folder.mkdir(parents=True, exist_ok=True)
        self.run_id = uuid.uuid4().hex[:16]
        self.segments = tuple(segments)
        self._listing = folder / f"{RUN_PREFIX}{self.run_id}.list"
        # Each piece under a hidden partial name of its segment (Segment.name) with the process id, as
        # files.partial_path names a segment's video, numbered by the muxer from the first segment's
        # index; ending in .mp4, as ffmpeg picks the streams to write from the name.
        self._pattern = folder / f".segment_%05d.{os.getpid()}.partial.mp4"
        muxer = {**piece_muxer([segment.frames for segment in segments], self._listing),
                 "segment_start_number": indices[0]}
        self._writer = FrameWriter(self._pattern, size, fps, options, output=output, muxer=muxer)

    def write(self, frames: np.ndarray) -> None:
        self._writer.write(frames)

    def piece(self, number: int) -> Path:
        """The file of the `number`-th segment of the run."""
        return Path(str(self._pattern) % self.segments[number].index)

    def finished(self) -> int:
        """Pieces the muxer has closed (whole lines of its listing; the last one only after finish)."""
        try:
            text = self._listing.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 0
        return text.count("\n")

    def finish(self) -> None:
        self._writer.finish()

    def abort(self) -> None:
        """Stop the encoder and remove what it wrote that nobody took (pieces already moved stay)."""
        self._writer.abort()
        self.cleanup()

    def cleanup(self) -> None:
        for number in range(len(self.segments)):
            self.piece(number).unlink(missing_ok=True)
        self._listing.unlink(missing_ok=True)



def join_pieces(pieces: Sequence[Path], destination: Path) -> Path:
    """A job's styled segments, in order, as one mp4 (ffmpeg's concat demuxer, stream copy): how a
    job whose pieces continue one another is decoded outside stitch (tests, benchmarks)."""
    from .ffmpeg_binary import ffmpeg_binary

    listing = destination.with_suffix(".txt")
    listing.write_text("".join(f"file '{path.resolve()}'\n" for path in pieces), encoding="utf-8")
    subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat",
                    "-safe", "0", "-i", str(listing), "-c", "copy", str(destination)], check=True)
    listing.unlink()
    return destination
