"""The scoring job entry point: ranks, sharding, resume, retries, and a real 2-process torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scoring_job.manifest import Manifest, Segment
from scoring_job.probe import probe_video
from scoring_job.score import Rank, complete_segments, job_encoder, main, rank_from_env, result_paths, run, shard
from scoring_job.spanning import join_pieces


def test_rank_comes_from_mpi_then_torchrun_then_defaults():
    mpi = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
           "RANK": "0", "WORLD_SIZE": "1"}
    assert rank_from_env(mpi) == Rank(3, 4, 1)
    assert rank_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == Rank(1, 2, 1)
    assert rank_from_env({}) == Rank(0, 1, 0)
    with pytest.raises(ValueError, match="outside"):
        rank_from_env({"RANK": "2", "WORLD_SIZE": "2"})


def _best_contiguous_max(frames: list[int], parts: int) -> int:
    """The smallest largest run over every way to cut `frames` into at most `parts` runs (brute force)."""
    if parts == 1 or len(frames) <= 1:
        return sum(frames)
    return min(max(sum(frames[:cut]), _best_contiguous_max(frames[cut:], parts - 1)) for cut in range(1, len(frames)))


@pytest.mark.parametrize("world_size", [1, 2, 3, 5, 8, 11])
def test_sharding_gives_each_rank_a_contiguous_balanced_run(world_size):
    frames = [50, 50, 49, 10, 90, 3, 3, 77]
    segments = [Segment(index=i, path=f"s{i}.mp4", frames=f) for i, f in enumerate(frames)]
    shards = shard(segments, world_size)
    assert len(shards) == world_size
    assert [s.index for ranked in shards for s in ranked] == list(range(8))  # each once, in runs, in order
    assert shards == shard(list(reversed(segments)), world_size)  # order of the manifest does not matter
    assert max(sum(s.frames for s in ranked) for ranked in shards) == _best_contiguous_max(frames, world_size)


@pytest.mark.parametrize(("codec", "segments", "reorder"), [
    ("h264", 3, False), ("hevc", 2, False), ("vp9", 2, False),  # seams to span: no reordering
    ("h264", 1, True),  # no seam: B-frames kept
    ("av1", 3, True),  # SVT-AV1's low-delay mode costs too many bits: an encoder per segment
])
def test_the_job_encoder_spans_seams_where_it_can(codec, segments, reorder):
    manifest = Manifest(job_id="t", fps="24/1", style="3", video_format={"codec": codec},
                        segments=[Segment(index=i, path=f"s{i}.mp4", frames=10) for i in range(segments)])
    assert job_encoder(manifest).reorder is reorder


@pytest.fixture
def job(make_clip, tmp_path) -> tuple[Path, Path]:
    """An input folder with a manifest of three real segments of different lengths."""
    input_dir, output_dir = tmp_path / "in", tmp_path / "out"
    segments = []
    for index, frames in enumerate([20, 9, 14]):
        (input_dir / "segments").mkdir(parents=True, exist_ok=True)
        path = f"segments/{index:03d}.mp4"
        shutil.copy(make_clip(frames=frames, size="96x64", audio=False), input_dir / path)
        segments.append(Segment(index=index, path=path, frames=frames))
    Manifest(job_id="t", fps="24/1", style="3:0.5,12:0.5", options={"compile": False, "batch_size": 4},
             segments=segments).save(input_dir)
    return input_dir, output_dir


def test_two_ranks_do_all_segments_then_a_rerun_skips_them(job):
    input_dir, output_dir = job
    assert run(input_dir, output_dir, Rank(0, 2, 0)) == []
    assert run(input_dir, output_dir, Rank(1, 2, 1)) == []
    manifest = Manifest.load(input_dir)
    choices = []
    records = [json.loads(result_paths(output_dir, s)[1].read_text()) for s in manifest.segments]
    # contiguous shards: rank 0 has segment 0, rank 1 segments 1 and 2 through one encoder
    assert [r["rank"] for r in records] == [0, 1, 1]
    assert records[0]["continues"] is None and records[1]["continues"] is None and records[2]["continues"] == 1
    assert records[1]["encode_run"] == records[2]["encode_run"] != records[0]["encode_run"]
    joined = join_pieces([result_paths(output_dir, s)[0] for s in manifest.segments], output_dir.parent / "all.mp4")
    assert probe_video(joined).frame_count == manifest.total_frames
    for segment, record in zip(manifest.segments, records, strict=True):
        assert record["frames"] == segment.frames and record["device"] == "cpu:fp32" and record["fps"] > 0
        choices.append(record["quality_choice"])
    # both ranks measured the job's same first frames: one CRF for the job, and it reached VMAF 95
    assert all(choice == choices[0] for choice in choices)
    assert choices[0]["target"] == 95 and choices[0]["vmaf"] >= 95 and choices[0]["reached"]
    assert choices[0]["tried"][str(choices[0]["crf"])] == choices[0]["vmaf"] and choices[0]["kbps"] > 0
    first_video = result_paths(output_dir, manifest.segments[0])[0].read_bytes()
    assert f"crf={choices[0]['crf']}.0".encode() in first_video  # the chosen CRF is what encoded the segments
    stamps = {p: p.stat().st_mtime_ns for p in output_dir.iterdir()}
    assert run(input_dir, output_dir, Rank(0, 2, 0)) == [] and run(input_dir, output_dir, Rank(1, 2, 1)) == []
    assert {p: p.stat().st_mtime_ns for p in output_dir.iterdir()} == stamps
    assert not list(output_dir.glob(".*"))  # no partial file, piece or muxer listing left


def test_a_fixed_crf_skips_the_search(job, monkeypatch):
    input_dir, output_dir = job
    manifest = Manifest.load(input_dir)
    options = manifest.options.model_copy(update={"crf": 23})
    manifest.model_copy(update={"options": options}).save(input_dir)
    monkeypatch.setattr("scoring_job.quality_target.choose_crf", lambda *a, **k: pytest.fail("searched"))
    assert run(input_dir, output_dir, Rank(0, 1, 0)) == []
    records = [json.loads(result_paths(output_dir, s)[1].read_text()) for s in manifest.segments]
    assert all("quality_choice" not in record for record in records)
    assert b"crf=23.0" in result_paths(output_dir, manifest.segments[0])[0].read_bytes()  # x264's settings SEI


def test_resume_redoes_only_unfinished_segments(job):
    input_dir, output_dir = job
    run(input_dir, output_dir, Rank(0, 1, 0))
    manifest = Manifest.load(input_dir)
    lost_video, _ = result_paths(output_dir, manifest.segments[1])
    _, lost_result = result_paths(output_dir, manifest.segments[2])
    lost_video.unlink()  # a crash after the result of another segment, before this one's video
    lost_result.unlink()  # a crash between writing a video and its result
    keep = result_paths(output_dir, manifest.segments[0])[0].stat().st_mtime_ns
    run(input_dir, output_dir, Rank(0, 1, 0))
    assert complete_segments(output_dir, manifest.segments) == {0, 1, 2}
    assert result_paths(output_dir, manifest.segments[0])[0].stat().st_mtime_ns == keep
    records = [json.loads(result_paths(output_dir, s)[1].read_text()) for s in manifest.segments]
    assert records[1]["continues"] is None and records[2]["continues"] == 1  # a new encoder run from segment 1


def test_a_piece_whose_predecessor_is_redone_is_redone_too(job):
    """Segment 2 continues segment 1's encode: once 1 is lost, 2 refers to frames no longer there."""
    input_dir, output_dir = job
    run(input_dir, output_dir, Rank(0, 1, 0))
    manifest = Manifest.load(input_dir)
    assert complete_segments(output_dir, manifest.segments) == {0, 1, 2}
    result_paths(output_dir, manifest.segments[1])[1].unlink()
    assert complete_segments(output_dir, manifest.segments) == {0}
    before = result_paths(output_dir, manifest.segments[2])[1].read_text()
    assert run(input_dir, output_dir, Rank(0, 1, 0)) == []
    assert result_paths(output_dir, manifest.segments[2])[1].read_text() != before
    assert complete_segments(output_dir, manifest.segments) == {0, 1, 2}


def test_a_broken_segment_is_retried_then_named_and_the_rest_finish(job, caplog):
    input_dir, output_dir = job
    (input_dir / "segments" / "001.mp4").write_bytes(b"\x00" * 500)
    with caplog.at_level("INFO", logger="scoring_job"):
        code = main(["--input", str(input_dir), "--output", str(output_dir), "--retries", "1"])
    assert code == 1
    assert "segments failed after 2 attempts: segment_00001" in caplog.text
    assert caplog.text.count("segment segment_00001 attempt") == 2
    manifest = Manifest.load(input_dir)
    assert complete_segments(output_dir, manifest.segments) == {0, 2}
    records = {s.index: json.loads(result_paths(output_dir, s)[1].read_text())
               for s in manifest.segments if s.index != 1}
    assert records[0]["attempt"] == 1  # its piece was closed when segment 1 failed, not redone
    assert records[2]["continues"] is None  # after the failed segment, a new encoder run


def test_a_missing_manifest_exits_2_with_the_reason(tmp_path, caplog):
    assert main(["--input", str(tmp_path), "--output", str(tmp_path / "out")]) == 2
    assert "no manifest.json" in caplog.text


def test_torchrun_with_two_processes(job):
    input_dir, output_dir = job
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run(
        [str(torchrun), "--nproc-per-node=2", "--module", "scoring_job.score",
         "--input", str(input_dir), "--output", str(output_dir)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rank 0/2" in done.stderr and "rank 1/2" in done.stderr
    manifest = Manifest.load(input_dir)
    assert complete_segments(output_dir, manifest.segments) == {s.index for s in manifest.segments}
