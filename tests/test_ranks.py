"""The local backend's ranks: only as many as there are unfinished segments, the cores split between them."""

from __future__ import annotations

import json
from pathlib import Path

from activities.compute.ranks import threads_per_rank, world_size
from scoring_job.manifest import Manifest


def manifest(segments: int) -> Manifest:
    return Manifest(job_id="j", fps="25/1", style="19",
                    segments=[{"index": k, "path": f"segments/segment_{k:05d}.mp4", "frames": 10}
                              for k in range(segments)])


def finish(output: Path, index: int) -> None:
    (output / f"segment_{index:05d}.mp4").write_bytes(b"video")
    (output / f"segment_{index:05d}.json").write_text(json.dumps({"frames": 10}))


def test_a_one_segment_job_starts_one_rank_whatever_the_setting(tmp_path):
    assert world_size(manifest(1), tmp_path, processes=4) == 1
    assert world_size(manifest(6), tmp_path, processes=2) == 2


def test_a_resumed_job_starts_ranks_only_for_what_is_left(tmp_path):
    for index in range(5):
        finish(tmp_path, index)
    assert world_size(manifest(6), tmp_path, processes=4) == 1
    finish(tmp_path, 5)
    assert world_size(manifest(6), tmp_path, processes=4) == 1  # nothing left: one rank finds that out


def test_cores_are_split_between_ranks():
    assert threads_per_rank(1, cores=2) == 2
    assert threads_per_rank(2, cores=2) == 1
    assert threads_per_rank(4, cores=2) == 1
    assert threads_per_rank(2, cores=16) == 8
