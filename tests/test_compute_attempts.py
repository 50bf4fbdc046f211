"""The manifest step on real Azurite: built from the plan, checked against the split, style travels."""

from __future__ import annotations

import pytest
from aml_double import FakeMLClient
from PIL import Image

from activities.compute.attempts import JobCanceled, mark_canceled, submit_attempt
from activities.compute.azureml import AzureMLBackend
from activities.media.scoring_io import write_manifest
from activities.media.segment_plan import PlannedSegment, SegmentPlan
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


def test_a_submit_racing_a_delete_cancels_the_attempt_the_sweep_missed(store):
    """DELETE /api/jobs/{id} marks the job, terminates it and sweeps its attempts; terminating does not
    stop a submit_compute already running, whose job may appear after the sweep."""
    client = FakeMLClient()
    backend = AzureMLBackend(client, store)
    create = client.jobs.create_or_update

    def create_after_the_delete(job, **kwargs):
        mark_canceled(store, "j2")  # the DELETE runs while the create is on its way
        assert backend.cancel_job("j2") == 0  # its sweep finds nothing yet
        return create(job, **kwargs)

    client.jobs.create_or_update = create_after_the_delete
    with pytest.raises(JobCanceled, match="canceled while attempt 1"):
        submit_attempt(store, backend, "j2", units_total=2, attempt=1)
    assert client.jobs.cancels == ["restyle-j2-a1"]


def test_a_submit_delivered_after_a_delete_starts_nothing(store):
    client = FakeMLClient()
    mark_canceled(store, "j3")
    store.write_json(store.settings.work_container, "j3/manifest.json", {})
    store.delete_prefix(store.settings.work_container, "j3/")  # a DELETE's removal: work/<id>/, not the marker
    with pytest.raises(JobCanceled):
        submit_attempt(store, AzureMLBackend(client, store), "j3", units_total=2, attempt=1)
    assert client.jobs.creates == []
