"""Stylize one video segment: decode -> batched inference -> encode as three overlapping stages.

Decoding and encoding run on their own threads (ffmpeg does the work in subprocesses) joined by
bounded queues, so the model never waits on I/O and memory stays at a few batches whatever the
video's length. The output is written under a temporary name and renamed only once it is
complete and its frame count checked, so a crash never leaves a plausible-looking partial file.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .engine import Stylizer, to_frames
from .files import partial_path
from .output_format import OutputFormat
from .probe import ProbeError, VideoInfo, probe_video
from .temporal import Motion, MotionEstimator, TemporalFilter, warmup_frames
from .video_io import (
    DEFAULT_FORMAT,
    EncodeOptions,
    FfmpegError,
    FrameReader,
    FrameWriter,
    frame_dtype,
    output_size,
    tail_frames,
)

log = logging.getLogger(__name__)

QUEUE_DEPTH = 3  # batches in flight per queue: enough to ride out encoder hiccups, bounded memory
MIN_SIDE = 16  # below this the network's reflect padding has nothing to reflect


class SegmentError(RuntimeError):
    """A segment could not be stylized; the message names the segment and the cause."""


@dataclass(frozen=True)
class SegmentResult:
    frames: int
    seconds: float
    fps: float
    device: str
    width: int
    height: int

    def as_dict(self) -> dict:
        return {"frames": self.frames, "seconds": round(self.seconds, 3), "fps": round(self.fps, 3),
                "device": self.device, "width": self.width, "height": self.height}


_END = object()


@dataclass(frozen=True)
class _Batch:
    """Frames on their way through the pipeline; warm-up frames are filtered but never written."""

    frames: np.ndarray
    motions: list[Motion | None] | None = None  # with the temporal filter on: each frame's motion
    warmup: bool = False


class _Stabilizer:
    """The temporal filter's two halves: motion on the decode thread (CPU, overlaps inference), the
    blend on the inference thread over the batch the model just produced (on the model's device)."""

    def __init__(self, alpha: float, stylizer: Stylizer) -> None:
        self._motion = MotionEstimator()
        self._filter = TemporalFilter(alpha, stylizer.config.device)
        self._stylizer = stylizer

    def prepare(self, frames: np.ndarray, warmup: bool = False) -> _Batch:
        return _Batch(frames, [self._motion(frame) for frame in frames], warmup)

    def __call__(self, batch: _Batch) -> np.ndarray:
        styled = self._stylizer.styled(batch.frames)
        with torch.inference_mode(), _one_cpu_thread(styled.device):
            for index, motion in enumerate(batch.motions or ()):  # sequential by nature; the model stays batched
                styled[index] = self._filter(styled[index], motion)
        return to_frames(styled, batch.frames.dtype)


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """The filter is many small elementwise ops: on CPU one thread each, not a parallel region each.
    Measured at 720p on the shared 2-core machine: 43 ms a frame with one thread, 170 ms with two."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Stage(threading.Thread):
    """A pipeline thread whose exception is kept for the main thread to re-raise."""

    def __init__(self, target: Callable[[], None], name: str, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._body = target
        self._stop_all = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._body()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            self.error = error
            self._stop_all.set()


def _put(target: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Blocking put that gives up when the pipeline is being torn down."""
    while not stop.is_set():
        try:
            target.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _drain(source: queue.Queue, stop: threading.Event) -> Iterator[np.ndarray]:
    while True:
        try:
            item = source.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        if item is _END:
            return
        yield item


class FrameSink(Protocol):
    """Where styled frames go when the caller owns the encoder (spanning.SpanningWriter)."""

    def write(self, frames: np.ndarray) -> None: ...


class _OwnFile:
    """The segment's own encoder: a partial file, renamed into place only once its count is checked."""

    def __init__(self, destination: Path, writer_args: dict) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        self.destination, self.partial = destination, partial_path(destination)
        self.writer = FrameWriter(self.partial, **writer_args)

    def write(self, frames: np.ndarray) -> None:
        self.writer.write(frames)

    def finish(self, written: int) -> int:
        """Frames the file holds."""
        self.writer.finish()
        return probe_video(self.partial).frame_count

    def discard(self) -> None:
        self.writer.abort()
        self.partial.unlink(missing_ok=True)

    def commit(self) -> None:
        os.replace(self.partial, self.destination)


class _LentSink:
    """The caller's encoder: it closes and checks the file, so here frames written is frames encoded."""

    def __init__(self, sink: FrameSink) -> None:
        self.write = sink.write

    def finish(self, written: int) -> int:
        return written

    def discard(self) -> None:
        """The caller's encoder is the caller's to stop."""

    def commit(self) -> None:
        """Nothing to rename: the caller's file is not finished yet."""


def stylize_segment(
    source: Path,
    destination: Path | None,
    stylizer: Stylizer,
    *,
    encode: EncodeOptions | None = None,
    scale: float = 1.0,
    copy_audio: bool = False,
    info: VideoInfo | None = None,
    expected_frames: int | None = None,
    fps: str | None = None,
    on_frames: Callable[[int], None] | None = None,
    stability: float = 0.0,
    lead_in: Path | None = None,
    hwaccel: str | None = None,
    output: OutputFormat = DEFAULT_FORMAT,
    sink: FrameSink | None = None,
) -> SegmentResult:
    """Stylize `source` into `destination` (mp4) with the same frame count and frame rate.

    `fps` (e.g. the whole video's rate from the manifest) overrides the segment's own: segments of
    a variable-frame-rate source must all be written at the one average rate to concatenate.
    `stability` > 0 turns on the temporal filter (scoring_job/temporal.py); 0 is per-frame output,
    bit for bit. `lead_in` (the previous segment) gives the filter its warm-up: its last
    `warmup_frames(stability)` frames run first and are never written. `hwaccel="cuda"` decodes
    with NVDEC (video_io.decode_args); `output` is the codec and picture format the source keeps
    (output_format.choose_output: 10-bit frames reach the model as uint16, never 8-bit); `encode`
    tunes its encoder (default: `output`'s at CRF 18), or names NVENC. With `sink` the frames go
    there instead (no `destination`): the caller's encoder spans segments, and finishes the file.
    """
    info = info or probe_video(source)
    size = output_size(info, scale)
    if min(size) < MIN_SIDE:
        raise SegmentError(f"{source.name}: frames of {size[0]}x{size[1]} are too small (min side {MIN_SIDE}px)")
    started = time.perf_counter()
    target = _LentSink(sink) if sink is not None else _OwnFile(destination, {
        "size": size, "fps": fps or info.fps_text, "options": encode or EncodeOptions(codec=output.encoder.name),
        "audio_source": source if copy_audio and info.has_audio else None, "output": output})
    reader = FrameReader(source, info, size, hwaccel=hwaccel, output=output)
    written = 0
    decoded: queue.Queue = queue.Queue(QUEUE_DEPTH)
    styled: queue.Queue = queue.Queue(QUEUE_DEPTH)
    stop = threading.Event()
    stabilizer = _Stabilizer(stability, stylizer) if stability > 0 else None
    batch_size = stylizer.config.batch_size

    def decode() -> None:
        if stabilizer is not None and lead_in is not None:
            warmup = _lead_in_frames(lead_in, size, warmup_frames(stability), output)
            for start in range(0, len(warmup), batch_size):
                if not _put(decoded, stabilizer.prepare(warmup[start:start + batch_size], warmup=True), stop):
                    return
        for frames in reader.batches(batch_size):
            batch = stabilizer.prepare(frames) if stabilizer is not None else _Batch(frames)
            if not _put(decoded, batch, stop):
                return
        _put(decoded, _END, stop)

    def encode_frames() -> None:
        nonlocal written
        for batch in _drain(styled, stop):
            if batch.warmup:
                continue
            target.write(batch.frames)
            written += len(batch.frames)
            if on_frames:
                on_frames(len(batch.frames))

    stages = [_Stage(decode, "decode", stop), _Stage(encode_frames, "encode", stop)]
    for stage in stages:
        stage.start()
    try:
        for batch in _drain(decoded, stop):
            frames = stabilizer(batch) if stabilizer is not None else stylizer(batch.frames)
            if not _put(styled, _Batch(frames, warmup=batch.warmup), stop):
                break
        _put(styled, _END, stop)
        for stage in stages:
            stage.join()
            if stage.error is not None:
                raise SegmentError(f"{source.name}: {stage.name} failed: {stage.error}") from stage.error
        encoded = target.finish(written)
    except BaseException:
        stop.set()
        reader.close()
        target.discard()
        raise
    problem = _check_counts(written, expected_frames, encoded)
    if problem:
        target.discard()
        raise SegmentError(f"{source.name}: {problem}")
    target.commit()
    seconds = time.perf_counter() - started
    return SegmentResult(written, seconds, written / seconds, stylizer.device_name, *size)


def _lead_in_frames(lead_in: Path, size: tuple[int, int], count: int, output: OutputFormat) -> np.ndarray:
    """The previous segment's last frames for the warm-up; a previous segment that cannot be read
    costs only the warm-up (a possible seam), never this segment."""
    try:
        return tail_frames(lead_in, probe_video(lead_in), size, count, output)
    except (ProbeError, FfmpegError) as error:
        log.warning("no warm-up from %s (%s): this segment starts the temporal filter afresh", lead_in.name, error)
        return np.empty((0, size[1], size[0], 3), frame_dtype(output))


def _check_counts(decoded: int, expected: int | None, encoded: int) -> str | None:
    if decoded == 0:
        return "no frames could be decoded (corrupt video?)"
    if expected is not None and decoded != expected:
        return f"decoded {decoded} frames, expected {expected} (truncated or corrupt segment?)"
    if encoded != decoded:
        return f"encoder wrote {encoded} frames, expected {decoded}"
    return None
