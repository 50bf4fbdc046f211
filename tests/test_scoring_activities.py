"""The manifest step on real Azurite: built from the plan, checked against the split, style travels."""

from __future__ import annotations

import pytest
from PIL import Image

from activities.scoring_activities import write_manifest
from activities.segment_plan import PlannedSegment, SegmentPlan
from scoring_job.manifest import Manifest

VIDEO = {"frame_count": 30, "fps": "25/1"}


@pytest.fixture
def planned(store):
    plan = SegmentPlan("copy", (PlannedSegment(0, 0, 12, 0, 12, 0.0, 0.48),
                                PlannedSegment(1, 12, 18, 12, 30, 0.48, 1.2)))
    store.write_json(store.settings.work_container, "j1/plan.json", plan.as_dict())
    return store


def test_manifest_matches_the_plan(planned, tmp_path):
    result = write_manifest(planned, "j1", VIDEO, "3:0.5,12:0.5", {"crf": 20}, split_frames=30)
    assert result == {"segments_total": 2, "frames_total": 30}
    data = planned.read_json(planned.settings.work_container, "j1/manifest.json")
    manifest = Manifest.model_validate(data)
    assert [(s.path, s.frames) for s in manifest.segments] == [("segments/segment_00000.mkv", 12),
                                                                ("segments/segment_00001.mkv", 18)]
    assert manifest.fps == "25/1" and manifest.options.crf == 20


def test_a_style_image_is_copied_into_the_job(planned, tmp_path):
    Image.new("RGB", (64, 64), "orange").save(tmp_path / "sunset.png")
    planned.upload_file(planned.settings.styles_container, "paintings/sunset.png", tmp_path / "sunset.png")
    write_manifest(planned, "j1", VIDEO, "paintings/sunset.png", {}, split_frames=30)
    manifest = Manifest.model_validate(planned.read_json(planned.settings.work_container, "j1/manifest.json"))
    assert manifest.style == "style/sunset.png"
    assert planned.exists(planned.settings.work_container, "j1/style/sunset.png")


def test_lost_frames_stop_the_job(planned):
    with pytest.raises(ValueError, match="frame counts disagree: plan 30, split 29"):
        write_manifest(planned, "j1", VIDEO, "19", {}, split_frames=29)
