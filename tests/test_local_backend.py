"""The local backend: a real detached torchrun job over Azurite, killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from activities.compute.backend import JobState
from activities.compute.local import LocalBackend, process_group
from scoring_job.manifest import Manifest, Segment


@pytest.fixture
def staged_job(store, make_clip) -> tuple[str, int]:
    """work/<job>/manifest.json + six real segments, as the orchestrator's manifest step leaves them."""
    # Each segment takes a few seconds per rank, so the test can kill the job after the first ones
    # finish and before the last ones do (16 tiny frames finished all six before the kill landed).
    job_id, count, frames = "localjob", 6, 96
    segments = []
    for index in range(count):
        path = f"segments/segment_{index:05d}.mp4"
        clip = make_clip(frames=frames, size="320x180", audio=False)
        store.upload_file(store.settings.work_container, f"{job_id}/{path}", clip)
        segments.append(Segment(index=index, path=path, frames=frames))
    manifest = Manifest(job_id=job_id, fps="24/1", style="19", options={"compile": False, "scale": 1.0},
                        segments=segments)
    folder = store.settings.temp_root / "stage"
    manifest.save(folder)
    store.upload_file(store.settings.work_container, f"{job_id}/manifest.json", folder / "manifest.json")
    return job_id, count


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def wait_for(backend: LocalBackend, handle: dict, done, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.status(handle)
        if done(status):
            return status
        time.sleep(0.5)
    log = Path(handle["state_dir"], "job.log").read_text()[-3000:]
    raise AssertionError(f"timed out; last status {status}; log:\n{log}")


def test_a_killed_job_is_resubmitted_and_redoes_only_unfinished_segments(store, staged_job):
    job_id, count = staged_job
    backend = LocalBackend(store)  # two torchrun processes (settings.local_processes)
    first = backend.submit(job_id, count, attempt=1)
    running = wait_for(backend, first, lambda s: s.units_done >= 1 or s.state.terminal)
    assert running.state is JobState.RUNNING, running
    # the whole group: runner, torchrun and both ranks
    os.killpg(process_group(Path(first["state_dir"])), signal.SIGKILL)
    failed = wait_for(backend, first, lambda s: s.state.terminal)
    assert failed.state is JobState.FAILED and "died" in failed.message
    finished_before = failed.units_done
    assert 1 <= finished_before < count

    second = backend.submit(job_id, count, attempt=2)
    completed = wait_for(backend, second, lambda s: s.state.terminal)
    assert completed.state is JobState.COMPLETED, completed
    assert completed.units_done == count == completed.units_total
    log = Path(second["state_dir"], "job.log").read_text()
    already = sum(int(part.split(" already done")[0].split()[-1]) for part in log.split("segments assigned, ")[1:])
    assert already == finished_before  # what attempt 1 finished was skipped, the rest was done
    for index in range(count):
        result = store.read_json(store.settings.work_container, f"{job_id}/styled/segment_{index:05d}.json")
        assert result["frames"] == 96


def test_jobs_beyond_the_limit_wait_their_turn_and_cancel_stops_the_process_group(store, staged_job):
    job_id, count = staged_job
    backend = LocalBackend(store)  # settings.local_max_jobs = 1
    first = backend.submit(job_id, count, attempt=1)
    second = backend.submit(job_id, count, attempt=2)  # as a resubmission racing its predecessor would
    wait_for(backend, first, lambda s: s.state is JobState.RUNNING)
    waiting = backend.status(second)
    assert waiting.state is JobState.QUEUED and "free local slot" in waiting.message
    assert process_group(Path(second["state_dir"])) is None  # not started: no process at all
    backend.cancel(first)  # frees the slot: the next status poll starts the waiting attempt
    wait_for(backend, second, lambda s: s.state is JobState.RUNNING)
    assert backend.status(first).state is JobState.CANCELED
    pgid = process_group(Path(first["state_dir"]))
    assert backend.cancel_job(job_id) == 1  # found by job id alone, as DELETE /api/jobs/{id} does
    assert backend.cancel_job(job_id) == 0  # already canceled: nothing more to do
    status = wait_for(backend, second, lambda s: s.state.terminal)
    assert status.state is JobState.CANCELED
    deadline = time.monotonic() + 20
    groups = [pgid, process_group(Path(second["state_dir"]))]
    while any(group_members(group) for group in groups) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [group_members(group) for group in groups] == [[], []], "process groups still alive after cancel"
    assert json.loads(json.dumps(status.as_dict()))["state"] == "canceled"
