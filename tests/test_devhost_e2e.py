"""The real Function App end to end on devhost (a child process), real Azurite, the local scoring backend.

A small clip (160x96, 48 frames, AAC) at settings that keep the whole file short: uncompiled model,
one scoring process, 0.5-1 s monitor polls, continue_as_new every 3 polls. One devhost serves the
tests in order; the last one kills it with SIGKILL mid-scoring and starts it again on the same state.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from e2e_support import FAST, begun_activities, completed_activities, ended, jobs_for, upload, wait_for

from devhost.process import DevhostProcess
from scoring_job.probe import probe_video
from tools.azurite import free_port


@pytest.fixture(scope="module")
def world(azurite, make_clip, tmp_path_factory):
    """Containers of its own, one devhost child on them, and the blob service to upload with."""
    tag = uuid.uuid4().hex[:8]
    containers = {kind: f"e2e{kind}{tag}" for kind in ("input", "styles", "work", "output", "rejected")}
    scratch = tmp_path_factory.mktemp("e2e")
    env = {f"RESTYLE_{kind.upper()}_CONTAINER": name for kind, name in containers.items()} | {
        "RESTYLE_POLL_INITIAL_SECONDS": "0.5", "RESTYLE_POLL_MAX_SECONDS": "1", "RESTYLE_POLLS_PER_HISTORY": "3",
        "RESTYLE_LOCAL_PROCESSES": "1", "RESTYLE_SEGMENT_SECONDS": "1", "RESTYLE_TEMP_ROOT": str(scratch / "work"),
        "RESTYLE_ACTIVITY_RETRY_ATTEMPTS": "2"}
    host = DevhostProcess(free_port(), scratch / "state", azurite, scratch / "devhost.log", env=env,
                          extra_args=("--blob-poll-seconds", "0.5")).start()
    service = BlobServiceClient.from_connection_string(azurite)
    for name in containers.values():
        service.create_container(name)
    yield {"host": host, "service": service, "containers": containers, "clip": make_clip(frames=48, size="160x96")}
    host.stop()


def check_output(world: dict, job: dict, tmp_path: Path) -> None:
    assert job["status"] == "Completed", job
    assert job["output"]["frames"] == 48
    name = job["output"]["output_blob"].split("/", 1)[1]
    local = tmp_path / "styled.mp4"
    local.write_bytes(world["service"].get_blob_client(world["containers"]["output"], name).download_blob().readall())
    facts = probe_video(local)
    assert (facts.frame_count, facts.width, facts.height, facts.has_audio, facts.audio_codec) == (
        48, 160, 96, True, "aac")


def test_a_dropped_blob_runs_once_however_often_its_event_arrives(world, tmp_path):
    host = world["host"]
    upload(world, "drop.mp4", world["clip"].read_bytes(), {"style": "19", **FAST})
    path = f"{world['containers']['input']}/drop.mp4"
    for _ in range(2):  # the same blob event twice more, on top of the poller's own
        assert host.request("POST", "/admin/functions/on_video_uploaded", {"input": path})[0] == 202
    [job] = wait_for(lambda: jobs_for(host, "drop.mp4"), 30, "the job")
    done = wait_for(lambda: ended(host, job["id"]), 150, "completion")
    check_output(world, done, tmp_path)
    assert len(jobs_for(host, "drop.mp4")) == 1
    ran = re.findall(rf"activity\.begin instance={job['id']} \S+ name=(\w+)", host.log())
    assert ran.count("probe") == 1 and ran.count("stitch") == 1  # started once, never restarted by a duplicate


def test_a_corrupt_upload_fails_with_the_reason_and_lands_in_rejected(world):
    host = world["host"]
    upload(world, "broken.mp4", b"this is not a video at all" * 100, {})
    [job] = wait_for(lambda: jobs_for(host, "broken.mp4"), 30, "the job")
    done = wait_for(lambda: ended(host, job["id"]), 60, "the failure")
    assert done["status"] == "Failed" and "input rejected" in done["error"], done
    rejected = world["service"].get_container_client(world["containers"]["rejected"])
    assert {"broken.mp4", "broken.mp4.reason.json"} <= {blob.name for blob in rejected.list_blobs()}


def test_a_posted_job_survives_kill_9_without_rerunning_completed_activities(world, tmp_path):
    host = world["host"]
    status, created = host.request("POST", "/api/jobs", {"blob": "drop.mp4", "style": "3",
                                                         "options": {"compile": False}})
    assert status == 202 and created["created"] is True and created["job"].endswith(f"/api/jobs/{created['id']}")
    job_id = created["id"]
    scoring = wait_for(lambda: (job := host.request("GET", f"/api/jobs/{job_id}")[1])["stage"] == "scoring" and job,
                       60, "the scoring stage")
    assert scoring["status"] == "Running"
    assert scoring["progress"]["segments_done"] < scoring["progress"]["segments_total"]  # the kill lands mid-job
    host.kill()
    before = host.log()
    done_before = completed_activities(before, job_id)
    assert {"probe", "split", "submit_compute"} <= set(re.findall(
        rf"activity\.end instance={job_id} \S+ name=(\w+)", before))

    host.start()
    done = wait_for(lambda: ended(host, job_id), 150, "completion after the restart")
    check_output(world, done, tmp_path)
    after = host.log()[len(before):]
    assert "recovered=" in after
    rerun = [task for task in begun_activities(after, job_id) if task in done_before]
    assert rerun == [], f"activities completed before the kill ran again: {rerun}"
    assert begun_activities(after, job_id), "nothing ran after the restart"
