"""Fault injection on the real app: devhost + Azurite + the local scoring backend, as bench/faults.py runs it.

A representative subset of the bench's matrix, on one Azurite and one devhost for the module: a scoring
rank SIGKILLed mid-job, devhost killed half-way through stitch, and a 20 s storage outage mid-scoring.
The bench runs every fault at every point (first/middle/last segment; probe, split, scoring, stitch).
"""

from __future__ import annotations

import pytest
from e2e_support import running_stack, write_clip

from bench.faults import APP_SETTINGS, CLIP, Case, Source, run_case


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("faults"), **APP_SETTINGS) as running:
        yield running


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Source:
    return Source.of(write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", **CLIP))


def assert_survived(case: Case) -> None:
    """The job completed with an exact output, one video + preview, nothing else ever listed."""
    failed = [name for name, ok in case.checks.items() if not ok]
    assert case.checks and not failed, (failed, case.as_dict())
    output = case.figures["output"]
    assert (output["frames"], output["audio_md5_equal"]) == (output["source_frames"], True)


def test_a_rank_killed_mid_job_costs_only_the_unfinished_segments(stack, source, tmp_path):
    case = run_case(stack, source, "worker_sigkill", "middle", tmp_path)
    figures = case.figures
    assert figures["hit"], figures  # the kill landed while the middle segment was being styled
    assert figures["attempt1_exit"]["code"] != 0
    assert 0 < figures["done_at_kill"] < figures["segments_total"]
    assert figures["recomputed"] == figures["unfinished_at_kill"] == figures["segments_total"] - figures["done_at_kill"]
    assert figures["attempt2_already_done"] == figures["done_at_kill"]
    assert figures["results_overwritten"] == 0
    assert_survived(case)


def test_devhost_killed_half_way_through_stitch_publishes_one_output_and_never_a_partial_one(stack, source,
                                                                                           tmp_path):
    case = run_case(stack, source, "devhost_kill", "stitch_upload", tmp_path)
    figures = case.figures
    assert "stitch" in figures["in_flight_at_kill"], figures
    assert not figures["video_committed"]  # the kill landed after the preview was published, before the video
    assert "stitch" in figures["ran_after_restart"]  # at least once: the interrupted stitch ran again
    assert figures["completed_rerun"] == 0
    assert figures["output_listings"] > 0
    assert_survived(case)


def test_a_storage_outage_mid_scoring_is_ridden_out_by_retries(stack, source, tmp_path):
    case = run_case(stack, source, "azurite_outage", "scoring", tmp_path, outage_seconds=20)
    figures = case.figures
    assert figures["outage_seconds"] >= 20
    assert figures["activities_during_outage"] > 0  # the job felt it: status polls ran while storage was down
    assert_survived(case)
