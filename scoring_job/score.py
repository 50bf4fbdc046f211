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
from dataclasses import dataclass
from functools import cache, partial
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
    """Balance segments over ranks by frame count (longest first, to the least-loaded rank).

    Deterministic (ties go to the lower index and the lower rank) and total: every segment lands
    on exactly one rank, whatever the count.
    """
    loads = [0] * world_size
    shards: list[list[Segment]] = [[] for _ in range(world_size)]
    for segment in sorted(segments, key=lambda s: (-s.frames, s.index)):
        target = min(range(world_size), key=lambda r: (loads[r], r))
        shards[target].append(segment)
        loads[target] += segment.frames
    return [sorted(ranked, key=lambda s: s.index) for ranked in shards]


def result_paths(output: Path, segment: Segment) -> tuple[Path, Path]:
    return output / f"{segment.name}.mp4", output / f"{segment.name}.json"


def is_complete(output: Path, segment: Segment) -> bool:
    """Done means: video present and a result JSON (written last) that agrees on the frame count."""
    video, result = result_paths(output, segment)
    if not (video.is_file() and result.is_file()):
        return False
    try:
        return json.loads(result.read_text(encoding="utf-8")).get("frames") == segment.frames
    except (OSError, json.JSONDecodeError):
        return False


def run(input_dir: Path, output_dir: Path, rank: Rank, *, retries: int = 2, device: str = "auto",
        compile_cache: Path | None = None) -> list[str]:
    """Stylize this rank's unfinished segments; return the names of segments that failed."""
    from .pipeline import stylize_segment  # torch is imported only by ranks that run models
    from .precision_choice import CACHE_NAME, stylizer_for
    from .quality_target import encoder_crf
    from .style_spec import parse_style
    from .video_io import EncodeOptions

    manifest = Manifest.load(input_dir)
    _FIELDS.job_id, _FIELDS.rank = manifest.job_id, str(rank.rank)
    mine = shard(manifest.segments, rank.world_size)[rank.rank]
    todo = [segment for segment in mine if not is_complete(output_dir, segment)]
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
    output = manifest.video_format
    crf, quality_choice = encoder_crf(options.crf, options.quality_target, output,
                                      lambda target: _quality_choice(stylizer, first_frames(), manifest, target))
    encode = EncodeOptions(crf=crf, preset=options.preset, codec=output.encoder.name)
    previous = {segment.index + 1: segment for segment in manifest.segments}  # warm-up source of each segment
    failed = []
    for segment in todo:
        video, result_file = result_paths(output_dir, segment)
        lead_in = input_dir / previous[segment.index].path if segment.index in previous else None
        for attempt in range(1, retries + 2):
            try:
                result = stylize_segment(input_dir / segment.path, video, stylizer, encode=encode,
                                         scale=options.scale, expected_frames=segment.frames, fps=manifest.fps,
                                         stability=options.stability, lead_in=lead_in,
                                         output=manifest.video_format)
            except Exception as error:  # noqa: BLE001 - every failure is retried, then reported
                log.warning("segment %s attempt %d failed: %s", segment.name, attempt, error)
                continue
            payload = {"segment": segment.index, "rank": rank.rank, "attempt": attempt, **result.as_dict()}
            if precision_choice is not None:
                payload["precision_choice"] = precision_choice.as_dict()
            if quality_choice is not None:
                payload["quality_choice"] = quality_choice.as_dict()
            write_text_atomic(result_file, json.dumps(payload))
            log.info("segment %s done: %d frames in %.1fs (%.2f fps, %s)",
                     segment.name, result.frames, result.seconds, result.fps, result.device)
            break
        else:
            failed.append(segment.name)
    return failed


def _first_frames(input_dir: Path, manifest: Manifest):
    """The job's own first frames at its output size, the same for every rank (`fast`'s quality check)."""
    from .precision_choice import SAMPLE_WINDOW
    from .probe import probe_video
    from .video_io import head_frames, output_size

    first = input_dir / manifest.segments[0].path
    info = probe_video(first)
    return head_frames(first, info, output_size(info, manifest.options.scale), SAMPLE_WINDOW)


def _quality_choice(stylizer, frames, manifest: Manifest, target: float):
    """The job's CRF for its quality target, measured on its own first frames styled (the same frames
    and so the same answer on every rank)."""
    from .quality_target import choose_crf_for

    choice = choose_crf_for(stylizer, frames, manifest.fps, target, manifest.options.preset)
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
