"""stylize_video through the Durable SDK's replay engine, with histories built as the host builds them.

The activities here are stand-ins that return what the real ones return (those are tested against
Azurite elsewhere); what is under test is the orchestration: order, fan-out, retries, resubmission,
deadline, progress and bounded history.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from devhost.inline import OrchestrationFailed, ReplayHost
from orchestrators.stylize_video import stylize_video
from restyle.settings import Settings

POLICY = Settings(poll_initial_seconds=5, poll_max_seconds=60, polls_per_history=4, compute_max_attempts=3,
                  compute_deadline_seconds=3600, activity_retry_attempts=3).orchestration_policy()
VIDEO = {"frame_count": 132, "fps": "25/1", "duration": 5.28, "width": 1280, "height": 720}


def _units(segments: int, units: int) -> list[list[int]]:
    edges = [round(k * segments / units) for k in range(units + 1)]
    return [[a, b] for a, b in itertools.pairwise(edges)]


class FakeActivities(dict):
    """Activity name -> callable; scoring advances one segment per status poll."""

    def __init__(self, segments: int = 4, scoring_outcomes: list[str] | None = None, split_failures: int = 0,
                 units: int | None = None):
        super().__init__()
        self.polls = 0
        self.attempt_states = list(scoring_outcomes or ["completed"])
        self.split_failures = split_failures
        self.update(
            probe=lambda a: {"accepted": True, "blob": a["blob"], "etag": "e", "style": a["style"],
                             "options": a["options"], "video": VIDEO, "split_mode": "copy",
                             "segment_count": segments, "units": _units(segments, units or segments),
                             "output": {"format": "mp4", "extension": ".mp4"}},
            split=self._split,
            write_manifest=lambda a: {"segments_total": segments, "frames_total": a["split_frames"]},
            submit_compute=lambda a: {"backend": "fake", "attempt": a["attempt"], "units_total": segments},
            compute_status=self._status,
            cancel_compute=lambda h: {"canceled": h["attempt"]},
            cancel_job_compute=lambda a: {"canceled": 1},
            stitch=lambda a: {"output_blob": "output/clip.styled.mp4", "preview_blob": "output/p.jpg",
                              "frames": 132, "duration": 5.28, "format": "mp4", "streams": []},
            cleanup=lambda a: {"removed": 3, "kept": False},
        )
        self.segments = segments

    def _split(self, argument):
        if argument["first"] == 2 and self.split_failures:
            self.split_failures -= 1
            raise ConnectionError("storage hiccup")
        frames = 132 // self.segments * (argument["last"] - argument["first"])
        return {"first": argument["first"], "last": argument["last"], "frames": frames, "mode": "copy"}

    def _status(self, handle):
        self.polls += 1
        outcome = self.attempt_states[min(handle["attempt"], len(self.attempt_states)) - 1]
        done = min(self.polls, self.segments)
        if outcome == "running":
            return {"state": "running", "units_done": done, "units_total": self.segments, "message": ""}
        if done < self.segments and outcome == "completed":
            return {"state": "running", "units_done": done, "units_total": self.segments, "message": ""}
        return {"state": outcome, "units_done": done, "units_total": self.segments, "message": outcome}


def start(activities: FakeActivities, **policy) -> tuple[ReplayHost, object]:
    host = ReplayHost(stylize_video, activities)
    result = host.run("job-1", {"blob": "clip.mp4", "style": "19", "options": {}, "policy": {**POLICY, **policy}})
    return host, result


def names(host: ReplayHost) -> list[str]:
    return [name for name, _ in host.calls]


def test_happy_path_reads_like_the_data_flow():
    host, result = start(FakeActivities())
    assert result["output_blob"] == "output/clip.styled.mp4" and result["frames"] == 132
    order = names(host)
    assert order[:5] == ["probe", "split", "split", "split", "split"]
    assert order[5:7] == ["write_manifest", "submit_compute"]
    assert order[-2:] == ["stitch", "cleanup"] and host.calls[-1][1] == {"job_id": "job-1", "succeeded": True}
    assert host.calls[5][1]["split_frames"] == 132
    assert all(argument["etag"] == "e" for name, argument in host.calls if name in ("split", "stitch"))


def test_the_split_fans_out_in_waves_of_the_configured_size():
    host, _ = start(FakeActivities(segments=5), split_parallelism=2)
    splits = [(argument["first"], argument["last"]) for name, argument in host.calls if name == "split"]
    assert splits == [(k, k + 1) for k in range(5)]
    waves = sorted({status["segments_split"] for status in host.custom_statuses if status["stage"] == "split"})
    assert waves == [0, 2, 4]  # a wave starts only when the one before it has finished


def test_progress_is_in_the_custom_status():
    host, _ = start(FakeActivities())
    stages = [status["stage"] for status in host.custom_statuses]
    assert stages[0] == "probe" and "scoring" in stages and stages[-1] == "done"
    scoring = [s for s in host.custom_statuses if s["stage"] == "scoring"]
    assert [s["segments_done"] for s in scoring] == sorted(s["segments_done"] for s in scoring)
    assert scoring[-1]["segments_total"] == 4 and scoring[-1]["attempt"] == 1
    assert any(s["frames_per_second"] and s["eta_seconds"] is not None for s in scoring)


def test_a_split_that_fails_once_is_retried():
    host, result = start(FakeActivities(split_failures=1))
    assert result["frames"] == 132
    assert names(host).count("split") == 5


def test_a_failed_scoring_job_is_resubmitted_and_succeeds():
    host, result = start(FakeActivities(scoring_outcomes=["preempted", "completed"]))
    submits = [argument for name, argument in host.calls if name == "submit_compute"]
    assert [s["attempt"] for s in submits] == [1, 2] and result["frames"] == 132


def test_scoring_that_keeps_failing_fails_the_job_with_the_reason_and_cleans_up():
    activities = FakeActivities(scoring_outcomes=["failed"])
    host = ReplayHost(stylize_video, activities)
    with pytest.raises(OrchestrationFailed, match="scoring failed 3 times"):
        host.run("job-1", {"blob": "clip.mp4", "style": "19", "options": {}, "policy": POLICY})
    assert host.calls[-1] == ("cleanup", {"job_id": "job-1", "succeeded": False})


def test_a_persistent_status_error_cancels_the_scoring_job_before_failing():
    """Roles not yet propagated, say: every status poll fails, the activity's retries run out, and
    the GPU job must not be left running (and billing) behind the failed orchestration."""
    activities = FakeActivities()

    def forbidden(_handle):
        raise PermissionError("403 AuthorizationFailed: the identity may not read jobs")

    activities["compute_status"] = forbidden
    host = ReplayHost(stylize_video, activities)
    with pytest.raises(OrchestrationFailed, match="403 AuthorizationFailed"):
        host.run("job-1", {"blob": "clip.mp4", "style": "19", "options": {}, "policy": POLICY})
    assert names(host)[-2:] == ["cancel_job_compute", "cleanup"]
    assert host.calls[-2][1] == {"job_id": "job-1"}


def test_a_cancel_that_fails_too_still_cleans_up_and_reports_the_first_error():
    activities = FakeActivities(scoring_outcomes=["failed"])

    def unreachable(_argument):
        raise ConnectionError("workspace unreachable")

    activities["cancel_job_compute"] = unreachable
    host = ReplayHost(stylize_video, activities)
    with pytest.raises(OrchestrationFailed, match="scoring failed 3 times"):
        host.run("job-1", {"blob": "clip.mp4", "style": "19", "options": {}, "policy": POLICY})
    assert host.calls[-1] == ("cleanup", {"job_id": "job-1", "succeeded": False})


def test_the_deadline_cancels_the_job():
    activities = FakeActivities(scoring_outcomes=["running"])
    host = ReplayHost(stylize_video, activities)
    with pytest.raises(OrchestrationFailed, match="deadline"):
        host.run("job-1", {"blob": "clip.mp4", "style": "19", "options": {},
                           "policy": {**POLICY, "compute_deadline_seconds": 600}})
    assert "cancel_compute" in names(host)
    assert host.calls[-1] == ("cleanup", {"job_id": "job-1", "succeeded": False})


def test_a_rejected_input_fails_with_the_reason_and_runs_nothing_else():
    activities = FakeActivities()
    activities["probe"] = lambda a: {"accepted": False, "reason": "not a video (audio only)",
                                     "rejected_blob": "rejected/clip.mp4"}
    host = ReplayHost(stylize_video, activities)
    with pytest.raises(OrchestrationFailed, match=r"input rejected: not a video \(audio only\)"):
        host.run("job-1", {"blob": "clip.mp4", "style": "19", "options": {}, "policy": POLICY})
    assert names(host) == ["probe"]


def test_history_stays_bounded_over_a_long_monitor():
    """A job that runs for hours: continue_as_new every few polls keeps each history short."""
    activities = FakeActivities(segments=200, units=4)  # the split's own history is not under test here
    host = ReplayHost(stylize_video, activities)
    policy = {**POLICY, "compute_deadline_seconds": 24 * 3600}  # 200 polls at the 60 s cap: ~3.3 hours
    result = host.run("job-1", {"blob": "clip.mp4", "style": "19", "options": {}, "policy": policy})
    assert result["frames"] == 132 and activities.polls >= 200
    assert host.executions >= 200 // POLICY["polls_per_history"]
    assert host.max_history < 60


def test_a_job_that_ends_between_polls_is_seen_when_its_backend_says_so_not_a_poll_later():
    """The backend raises compute_changed at its events_url when the job ends; the orchestrator, waiting
    out a 60 s poll interval, polls at once. Without the event the same job is seen a minute later."""
    ended_at: dict = {}

    def run(raise_event: bool) -> list:
        activities = FakeActivities(segments=1)
        host = ReplayHost(stylize_video, activities)
        polled_at = []

        def submit(argument):
            assert argument["events_url"] == "http://host/instances/job-1/raiseEvent/{eventName}"
            ended_at["t"] = host.clock + timedelta(seconds=3)
            if raise_event:
                host.raise_event(ended_at["t"], "compute_changed", {"exit_code": 0})
            return {"backend": "fake", "attempt": argument["attempt"], "units_total": 1}

        def status(handle):
            polled_at.append(host.clock)
            done = host.clock >= ended_at["t"]
            return {"state": "completed" if done else "running", "units_done": int(done), "units_total": 1,
                    "message": ""}

        activities.update(submit_compute=submit, compute_status=status)
        result = host.run("job-1", {"blob": "clip.mp4", "style": "19", "options": {}, "events_url":
                                    "http://host/instances/job-1/raiseEvent/{eventName}",
                                    "policy": {**POLICY, "poll_initial_seconds": 60}})
        assert result["frames"] == 132
        return polled_at

    with_event = run(raise_event=True)
    assert len(with_event) == 1 and with_event[0] == ended_at["t"]  # polled the moment the job ended
    without = run(raise_event=False)
    assert len(without) == 1 and (without[0] - ended_at["t"]).total_seconds() == 57  # the poll interval's end


def test_a_job_continued_before_the_compute_rename_finishes_under_this_code():
    """A deploy while a job runs: its continue_as_new input and its backend's answers still carry the
    names from before compute fields were generic (`scoring`, `scoring_max_attempts`, `segments_*`)."""
    activities = FakeActivities(segments=2, scoring_outcomes=["failed", "completed"])
    polls = iter([{"state": "running", "segments_done": 1, "segments_total": 2, "message": ""},
                  {"state": "failed", "segments_done": 1, "segments_total": 2, "message": "node lost"}])
    activities["compute_status"] = lambda handle: next(polls, {"state": "completed", "units_done": 2,
                                                              "units_total": 2, "message": ""})
    legacy_policy = {("scoring_" + key.removeprefix("compute_") if key.startswith("compute_") else key): value
                     for key, value in POLICY.items()}
    assert "scoring_max_attempts" in legacy_policy and "compute_max_attempts" not in legacy_policy
    host = ReplayHost(stylize_video, activities)
    result = host.run("job-1", {
        "blob": "clip.mp4", "etag": "e", "style": "19", "options": {}, "video": VIDEO, "policy": legacy_policy,
        "scoring": {"kind": "stylize", "handle": {"backend": "fake", "attempt": 1, "segments_total": 2},
                    "attempt": 1, "deadline": (host.clock + timedelta(hours=1)).isoformat(), "delay": 5,
                    "started": host.clock.isoformat()}})
    assert result["frames"] == 132
    assert names(host)[0] == "compute_status"  # resumed monitoring: nothing before it ran again
    submits = [argument for name, argument in host.calls if name == "submit_compute"]
    assert [(s["attempt"], s["units_total"]) for s in submits] == [(2, 2)]
    progress = [s for s in host.custom_statuses if s["stage"] == "scoring"]
    assert (progress[0]["segments_done"], progress[0]["segments_total"]) == (1, 2)  # the API's names


def test_the_removal_a_delete_starts_retries_its_cleanup_until_it_succeeds():
    from orchestrators.remove_work import remove_work

    failures = iter([ConnectionError("storage hiccup")])

    def cleanup(argument):
        if (failure := next(failures, None)) is not None:
            raise failure
        return {"removed": 7, "kept": False}

    host = ReplayHost(remove_work, {"cleanup": cleanup})
    assert host.run("job-1-remove-work", {"job_id": "job-1", "policy": POLICY}) == {"removed": 7, "kept": False}
    assert host.calls == [("cleanup", {"job_id": "job-1", "succeeded": False, "remove": True})] * 2
