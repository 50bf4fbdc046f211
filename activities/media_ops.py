"""Media operations on local files, copying streams wherever possible (Functions hosts have little CPU).

PyAV reads packet timestamps and remuxes packets; the ffmpeg binary from imageio-ffmpeg does the
few steps that must decode (a forced-keyframe re-encode, md5 of an audio stream, concatenation).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av

from scoring_job.ffmpeg_binary import ffmpeg_binary

from .segment_plan import Packet, PlannedSegment

# Audio codecs an MP4 can hold: those are muxed by stream copy; others are re-encoded to AAC.
MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
REENCODE_CRF = 12  # intermediate segments: near-transparent, the scoring job re-encodes anyway


class MediaError(RuntimeError):
    """An ffmpeg/PyAV step failed; the message says which and why."""


def run_ffmpeg(*args: str) -> str:
    done = subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise MediaError(f"ffmpeg failed: {done.stderr.strip()[-800:]}")
    return done.stdout


def video_packets(path: Path) -> tuple[list[Packet], float]:
    """Every video packet's timestamps and keyframe flag, in decode order (demux only)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [Packet(p.pts, p.dts if p.dts is not None else p.pts, bool(p.is_keyframe))
                   for p in container.demux(stream) if p.size and p.pts is not None]
        return packets, float(stream.time_base)


def copy_segments(source: Path, targets: list[tuple[PlannedSegment, Path]]) -> None:
    """Remux consecutive planned segments (each starting at a closed keyframe) in one demux pass.

    Packets are counted in decode order from the start of the file (demuxing reads, it does not
    decode) and streamed into one MP4 after another: one pass per range, not one per segment.
    """
    first = targets[0][0]
    with av.open(str(source)) as reader:
        stream = reader.streams.video[0]
        packets = (p for p in reader.demux(stream) if p.size and p.pts is not None)
        index = 0
        for segment, destination in targets:
            with av.open(str(destination), "w", format="mp4") as writer:
                out = writer.add_stream_from_template(stream)
                offset = None
                for packet in packets:
                    if index >= segment.decode_start:
                        if offset is None:
                            offset = packet.dts if packet.dts is not None else packet.pts
                        packet.pts -= offset
                        if packet.dts is not None:
                            packet.dts -= offset
                        packet.stream = out
                        writer.mux(packet)
                    index += 1
                    if index >= segment.decode_end:
                        break
        if index < first.decode_start:
            raise MediaError(f"source ended before segment {first.index}")


def reencode_segment(source: Path, destination: Path, segment: PlannedSegment, frame_seconds: float) -> None:
    """Exact frames [start, start+frames) re-encoded with a keyframe first (sparse-keyframe sources).

    ffmpeg's accurate input seek drops decoded frames before the seek point, which is placed half a
    frame before the segment's first frame so that timestamp rounding cannot move the cut.
    """
    seek = max(segment.start_seconds - frame_seconds / 2, 0.0)
    run_ffmpeg("-ss", f"{seek:.6f}", "-i", str(source), "-map", "0:v:0", "-frames:v", str(segment.frames),
               "-fps_mode", "passthrough", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(REENCODE_CRF),
               "-an", "-sn", "-dn", str(destination))


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.frames or sum(1 for p in container.demux(stream) if p.size)


def extract_audio(source: Path, destination: Path) -> None:
    """First audio track, stream copy, into Matroska (holds any codec)."""
    run_ffmpeg("-i", str(source), "-map", "0:a:0", "-c", "copy", "-vn", "-sn", "-dn", str(destination))


def audio_md5(path: Path) -> str:
    """md5 of the first audio stream's packets (identical iff the audio was copied bit for bit)."""
    return run_ffmpeg("-i", str(path), "-map", "0:a:0", "-c", "copy", "-f", "md5", "-").strip().removeprefix("MD5=")


def concat_with_audio(segments: list[Path], audio: Path | None, audio_codec: str | None, destination: Path,
                      list_file: Path) -> bool:
    """Concatenate styled segments by stream copy, mux the audio; return whether audio was copied."""
    list_file.write_text("".join(f"file '{_concat_escape(path)}'\n" for path in segments), encoding="utf-8")
    args = ["-f", "concat", "-safe", "0", "-i", str(list_file)]
    copied = True
    if audio is not None:
        args += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0"]
        copied = audio_codec in MP4_AUDIO_CODECS
        args += ["-c:v", "copy", "-c:a", "copy"] if copied else ["-c:v", "copy", "-c:a", "aac", "-b:a", "192k"]
    else:
        args += ["-map", "0:v:0", "-c", "copy"]
    run_ffmpeg(*args, "-movflags", "+faststart", "-f", "mp4", str(destination))
    return copied


def _concat_escape(path: Path) -> str:
    return str(path.resolve()).replace("'", "'\\''")


def video_duration(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / av.time_base
