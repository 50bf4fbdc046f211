"""Scoring job entry point: one process per GPU (or CPU worker), each stylizing its own shard.

    python -m scoring_job.score --input DIR --output DIR

Rank and world size come from Open MPI (Azure ML MpiDistribution), torchrun, or default to 0/1.
Sharding is a pure function of the manifest, so a resubmitted job (after a crash or a node
pre-emption) gives every rank the same segments, and segments already finished are skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, cached_property, partial
from pathlib import Path

from .files import write_text_atomic
from .manifest import Manifest, ManifestError, Segment

log = logging.getLogger("scoring_job")


class _JobFields(logging.Formatter):
    """Puts the job id and rank on every log line of this process (set once the manifest is read),
    so a rank's log can be matched to the app's telemetry of the same job. A formatter, not a filter:
    records are shared by every handler, so they are formatted from a copy and never changed."""

    job_id = "-"
    rank = "-"

    def __init__(self) -> None:
        super().__init__("%(asctime)s job_id=%(job_id)s rank=%(rank)s %(name)s %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        copy = logging.makeLogRecord(record.__dict__)
        copy.job_id, copy.rank = getattr(record, "job_id", self.job_id), self.rank
        return super().format(copy)


_FIELDS = _JobFields()

_RANK_VARIABLES = (
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),  # Azure ML MPI
    ("RANK", "WORLD_SIZE", "LOCAL_RANK"),  # torchrun
)


@dataclass(frozen=True)
class Rank:
    rank: int
    world_size: int
    local_rank: int


def rank_from_env(env: Mapping[str, str] = os.environ) -> Rank:
    for rank_name, size_name, local_name in _RANK_VARIABLES:
        if rank_name in env and size_name in env:
            rank, size = int(env[rank_name]), int(env[size_name])
            if not 0 <= rank < size:
                raise ValueError(f"{rank_name}={rank} is outside 0..{size - 1}")
            return Rank(rank, size, int(env.get(local_name, rank)))
    return Rank(0, 1, 0)


def shard(segments: Sequence[Segment], world_size: int) -> list[list[Segment]]:
    """Contiguous runs of segments, one per rank, balanced by frame count (the largest run as small as
    a cut into `world_size` runs allows).

    Contiguous so that a rank's encoder spans its seams (spanning.py). Deterministic whatever the
    manifest's order (by index) and total: every segment lands on exactly one rank; a rank left
    without segments has nothing to do.
    """
    ordered = sorted(segments, key=lambda s: s.index)
    frames = [segment.frames for segment in ordered]
    low, high = max(frames, default=0), sum(frames)
    while low < high:  # the smallest largest run that `world_size` runs can hold
        middle = (low + high) // 2
        low, high = (low, middle) if len(_runs(frames, middle)) <= world_size else (middle + 1, high)
    runs = _runs(frames, low)
    shards = [ordered[start:end] for start, end in runs]
    return shards + [[] for _ in range(world_size - len(shards))]


def _runs(frames: Sequence[int], capacity: int) -> list[tuple[int, int]]:
    """Greedy [start, end) runs of at most `capacity` frames (a longer single segment stands alone)."""
    runs, start, load = [], 0, 0
    for index, count in enumerate(frames):
        if index > start and load + count > capacity:
            runs.append((start, index))
            start, load = index, 0
        load += count
    return [*runs, (start, len(frames))] if frames else runs


def result_paths(output: Path, segment: Segment) -> tuple[Path, Path]:
    return output / f"{segment.name}.mp4", output / f"{segment.name}.json"


def _finished_record(output: Path, segment: Segment) -> dict | None:
    """The segment's result, if its video is present and the result (written last) agrees on the frame count."""
    video, result = result_paths(output, segment)
    if not (video.is_file() and result.is_file()):
        return None
    try:
        record = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) and record.get("frames") == segment.frames else None


def complete_segments(output: Path, segments: Sequence[Segment]) -> set[int]:
    """Indices of the finished segments. A piece that continues its predecessor's encode
    (spanning.py) counts only while that predecessor is finished from the same encoder run: a
    predecessor redone since would leave it referring to frames that are no longer there."""
    return whole_chains({segment.index: _finished_record(output, segment) for segment in segments})


def whole_chains(records: Mapping[int, dict | None]) -> set[int]:
    """Indices whose result is there and either starts with a keyframe of its own or continues a
    whole chain of results from the same encoder run (one pass in index order: a piece continues
    the segment before it)."""
    whole: set[int] = set()
    for index in sorted(records):
        record = records[index]
        if record is None:
            continue
        previous = record.get("continues")
        if previous is None or (previous in whole and records[previous].get("encode_run") == record.get("encode_run")):
            whole.add(index)
    return whole


def run(input_dir: Path, output_dir: Path, rank: Rank, *, retries: int = 2, device: str = "auto",
        compile_cache: Path | None = None) -> list[str]:
    """Stylize this rank's unfinished segments; return the names of segments that failed."""
    from .precision_choice import CACHE_NAME, stylizer_for
    from .quality_target import encoder_crf
    from .style_spec import parse_style

    manifest = Manifest.load(input_dir)
    _FIELDS.job_id, _FIELDS.rank = manifest.job_id, str(rank.rank)
    mine = shard(manifest.segments, rank.world_size)[rank.rank]
    done = complete_segments(output_dir, manifest.segments)
    todo = [segment for segment in mine if segment.index not in done]
    log.info("rank %d/%d: %d segments assigned, %d already done, %d to do",
             rank.rank, rank.world_size, len(mine), len(mine) - len(todo), len(todo))
    if not todo:
        return []
    options = manifest.options
    if device == "auto" and rank.world_size > 1:
        device = _device_for_local_rank(rank.local_rank)
    first_frames = cache(partial(_first_frames, input_dir, manifest))  # decoded once for both checks below
    stylizer, precision_choice = stylizer_for(parse_style(manifest.style), device, options.batch_size,
                                              options.precision, sample=first_frames,
                                              style_root=input_dir,
                                              cache_file=compile_cache / CACHE_NAME if compile_cache else None)
    _prepare_model(stylizer, manifest, todo, input_dir, compile_cache)
    encode = job_encoder(manifest)
    crf, quality_choice = encoder_crf(options.crf, options.quality_target, manifest.video_format,
                                      lambda target: _quality_choice(stylizer, first_frames(), manifest, target,
                                                                     encode))
    choices = {"precision_choice": precision_choice, "quality_choice": quality_choice}
    job = _RankJob(input_dir, output_dir, manifest, stylizer, replace(encode, crf=crf), rank, retries,
                   {key: choice.as_dict() for key, choice in choices.items() if choice is not None})
    return job.score(todo)


def job_encoder(manifest: Manifest):
    """The job's encoder at CRF 18 (the caller sets the CRF): no frame reordering where there are
    seams for one encoder to span (spanning.py), the same on every rank, so the quality search
    measures what every segment is encoded with."""
    from .video_io import NO_REORDER, EncodeOptions

    name = manifest.video_format.encoder.name
    spans = len(manifest.segments) > 1 and name in NO_REORDER
    return EncodeOptions(preset=manifest.options.preset, codec=name, reorder=not spans)


@dataclass
class _RankJob:
    """One rank's segments: runs of consecutive ones through one encoder each (spanning.py),
    the others encoded alone; each segment retried, then reported as failed."""

    input_dir: Path
    output_dir: Path
    manifest: Manifest
    stylizer: object
    encode: object  # video_io.EncodeOptions
    rank: Rank
    retries: int
    choices: dict

    def score(self, todo: list[Segment]) -> list[str]:
        failed: list[str] = []
        for chain in consecutive_runs(todo) if not self.encode.reorder else [[segment] for segment in todo]:
            failed += self._score_chain(chain) if len(chain) > 1 else self._score_alone(chain[0])
        return failed

    @cached_property
    def _sources(self) -> dict[int, Path]:
        return {segment.index: self.input_dir / segment.path for segment in self.manifest.segments}

    def stylize(self, segment: Segment, video: Path | None, sink=None):
        from .pipeline import stylize_segment

        lead_in = self._sources.get(segment.index - 1)  # the warm-up comes from the source segment before
        options = self.manifest.options
        return stylize_segment(self.input_dir / segment.path, video, self.stylizer, encode=self.encode,
                               scale=options.scale, expected_frames=segment.frames, fps=self.manifest.fps,
                               stability=options.stability, lead_in=lead_in, output=self.manifest.video_format,
                               sink=sink)

    def record(self, segment: Segment, attempt: int, result, encode_run: str | None = None,
               continues: int | None = None) -> None:
        """The segment's result, written last: `continues` names the segment whose encode it goes on
        from (spanning.py), both of `encode_run`; None: it starts with a keyframe of its own."""
        payload = {"segment": segment.index, "rank": self.rank.rank, "attempt": attempt, **result.as_dict(),
                   "encode_run": encode_run, "continues": continues, **self.choices}
        write_text_atomic(result_paths(self.output_dir, segment)[1], json.dumps(payload))
        log.info("segment %s done: %d frames in %.1fs (%.2f fps, %s)",
                 segment.name, result.frames, result.seconds, result.fps, result.device)

    def _score_alone(self, segment: Segment) -> list[str]:
        video = result_paths(self.output_dir, segment)[0]
        for attempt in range(1, self.retries + 2):
            try:
                result = self.stylize(segment, video)
            except Exception as error:  # noqa: BLE001 - every failure is retried, then reported
                log.warning("segment %s attempt %d failed: %s", segment.name, attempt, error)
                continue
            self.record(segment, attempt, result)
            return []
        return [segment.name]

    def _score_chain(self, chain: list[Segment]) -> list[str]:
        """Through one encoder. A failure ends the encoder's run there: the pieces it closed stay, and a
        new run (a new keyframe) starts at the segment that failed, or after it once it has used its
        attempts."""
        from .probe import probe_video
        from .video_io import output_size

        attempts: dict[int, int] = {}
        failed: list[str] = []
        queue = [list(chain)]
        size = output_size(probe_video(self.input_dir / chain[0].path), self.manifest.options.scale)
        while queue:
            pending = queue.pop(0)
            span = _SpanRun(self, pending, size, attempts)
            try:
                span.run()
                continue
            except Exception as error:  # noqa: BLE001 - retried in a new run, then reported
                stuck = span.current
                span.salvage()
                attempts[stuck.index] = attempts.get(stuck.index, 0) + 1
                log.warning("segment %s attempt %d failed (one encoder from %s): %s", stuck.name,
                            attempts[stuck.index], pending[0].name, error)
            left = pending[span.kept:]
            if attempts[stuck.index] > self.retries:
                failed.append(stuck.name)
                split = left.index(stuck)
                queue[:0] = [part for part in (left[:split], left[split + 1:]) if part]
            elif left:
                queue.insert(0, left)
        return failed


class _SpanRun:
    """One spanning.SpanningWriter over `segments`; each piece is moved to its result name and
    recorded as soon as the muxer has closed it. `current`: the segment a failure belongs to."""

    def __init__(self, job: _RankJob, segments: list[Segment], size: tuple[int, int],
                 attempts: dict[int, int]) -> None:
        from .spanning import SpanningWriter

        self.job, self.segments, self.attempts = job, segments, attempts
        self.writer = SpanningWriter(job.output_dir, segments, size, job.manifest.fps, job.encode,
                                     job.manifest.video_format)
        self.results: list = []
        self.kept = 0
        self.current = segments[0]

    def write(self, frames) -> None:
        """The pipeline's sink (its encode thread): frames to the encoder, then the pieces it closed kept
        at once, so a rank killed mid-segment loses only that segment."""
        self.writer.write(frames)
        self._keep_finished()

    def run(self) -> None:
        for segment in self.segments:
            self.current = segment
            self.results.append(self.job.stylize(segment, None, sink=self))
            self._keep_finished()
        self.current = self.segments[min(self.kept, len(self.segments) - 1)]
        self.writer.finish()
        self._keep_finished()
        self.writer.cleanup()

    def salvage(self) -> None:
        """After a failure: close the encoder so that the pieces of the segments styled before it are
        kept; an encoder that cannot close loses them (they are redone)."""
        try:
            self.writer.finish()
            self._keep_finished()
        except Exception as error:  # noqa: BLE001 - the failure being handled is the one reported
            log.warning("encoder run from %s could not close (%s): its open pieces are redone",
                        self.segments[0].name, error)
            self.writer.abort()
        self.writer.cleanup()

    def _keep_finished(self) -> None:
        from .spanning import packet_count

        while self.kept < min(self.writer.finished(), len(self.results)):
            segment, piece = self.segments[self.kept], self.writer.piece(self.kept)
            self.current = segment
            frames = packet_count(piece)
            if frames != segment.frames:
                raise RuntimeError(f"the encoder's piece for {segment.name} holds {frames} frames, "
                                   f"expected {segment.frames}")
            os.replace(piece, result_paths(self.job.output_dir, segment)[0])
            self.job.record(segment, self.attempts.get(segment.index, 0) + 1, self.results[self.kept],
                             encode_run=self.writer.run_id,
                             continues=self.segments[self.kept - 1].index if self.kept else None)
            self.kept += 1
        self.current = self.segments[min(len(self.results), len(self.segments) - 1)]


def consecutive_runs(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Segments (in index order) grouped where each index follows the one before."""
    runs: list[list[Segment]] = []
    for segment in sorted(segments, key=lambda s: s.index):
        if runs and runs[-1][-1].index + 1 == segment.index:
            runs[-1].append(segment)
        else:
            runs.append([segment])
    return runs


def _first_frames(input_dir: Path, manifest: Manifest):
    """The job's own first frames at its output size, the same for every rank (`fast`'s quality check)."""
    from .precision_choice import SAMPLE_WINDOW
    from .probe import probe_video
    from .video_io import head_frames, output_size

    first = input_dir / manifest.segments[0].path
    info = probe_video(first)
    return head_frames(first, info, output_size(info, manifest.options.scale), SAMPLE_WINDOW)


def _quality_choice(stylizer, frames, manifest: Manifest, target: float, encode):
    """The job's CRF for its quality target, measured on its own first frames styled (the same frames
    and so the same answer on every rank), encoded as the job encodes (its encoder, B-frames or not)."""
    from .quality_target import choose_crf_for

    choice = choose_crf_for(stylizer, frames, manifest.fps, target, manifest.options.preset, codec=encode.codec,
                            reorder=encode.reorder)
    log.info("quality %.1f: crf %d (VMAF %.2f, %.0f kbit/s on %d frames; tried %s)", choice.target, choice.crf,
             choice.vmaf, choice.kbps, choice.frames, choice.tried)
    return choice


def _prepare_model(stylizer, manifest: Manifest, todo: list[Segment], input_dir: Path,
                   cache_folder: Path | None) -> None:
    """Compile or not, for the frames this rank has left (warm-up frames included)."""
    from .compile_cache import CompileCache, default_cache_folder
    from .compile_choice import prepare_model
    from .probe import probe_video
    from .temporal import warmup_frames
    from .video_io import output_size

    options = manifest.options
    width, height = output_size(probe_video(input_dir / todo[0].path), options.scale)
    lead_ins = sum(1 for segment in todo if segment.index > 0) if options.stability > 0 else 0
    frames = sum(segment.frames for segment in todo) + lead_ins * warmup_frames(options.stability)
    mode = {True: "always", False: "never"}.get(options.compile, "auto")
    model = ["--style", manifest.style, "--style-root", str(input_dir), "--device", str(stylizer.config.device),
             "--precision", stylizer.device_name.split(":")[1]]
    prepare_model(stylizer, height, width, frames, mode, CompileCache(cache_folder or default_cache_folder()), model)


def _device_for_local_rank(local_rank: int) -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}"
    return "cpu"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="folder with manifest.json and segments")
    parser.add_argument("--output", type=Path, required=True, help="folder for styled segments and results")
    parser.add_argument("--retries", type=int, default=2, help="extra attempts per failing segment")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--compile-cache", type=Path,
                        help="folder for compiled code and timings shared by ranks and jobs (default: "
                             "$RESTYLE_COMPILE_CACHE, else restyle-compile-cache in the temp folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_FIELDS)
    try:
        rank = rank_from_env()
        failed = run(args.input, args.output, rank, retries=args.retries, device=args.device,
                     compile_cache=args.compile_cache)
    except (ManifestError, ValueError) as error:
        log.error("cannot start: %s", error)
        return 2
    if failed:
        log.error("rank %d: segments failed after %d attempts: %s", rank.rank, args.retries + 1, ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
