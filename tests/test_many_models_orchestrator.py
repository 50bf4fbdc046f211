"""many_models through the Durable SDK's replay engine: order of the stages, the shared compute-job
phase (resubmission of a failed training run as the same kind, resuming), rejection and cleanup."""

from __future__ import annotations

import pytest

from devhost.inline import OrchestrationFailed, ReplayHost
from orchestrators.many_models import many_models
from restyle.settings import Settings

POLICY = Settings(poll_initial_seconds=5, poll_max_seconds=60, polls_per_history=4, compute_max_attempts=3,
                  compute_deadline_seconds=3600, activity_retry_attempts=3).orchestration_policy()
TABLE = {"accepted": True, "blob": "sales.csv", "etag": "e", "dataset": "sales", "format": "csv", "rows": None,
         "bytes": 1234, "partition_columns": ["store"], "ignored_columns": []}


def activities(outcomes: list[str], accepted: bool = True, refused_by_prepare: bool = False) -> dict:
    """The first poll finds the run preparing (no partition count yet); then training advances two
    partitions per poll; attempt n ends as outcomes[n-1]."""
    polls = []

    def status(handle: dict) -> dict:
        polls.append(handle["attempt"])
        if len(polls) == 1:
            return {"state": "running", "units_done": 0, "units_total": 0, "message": "", "unit": "partition"}
        done = min(2 * (len(polls) - 1), 6)
        state = outcomes[handle["attempt"] - 1] if done == 6 else "running"
        return {"state": state, "units_done": done, "units_total": 6, "message": state, "unit": "partition"}

    def collect(argument: dict) -> dict:
        if refused_by_prepare:
            return {"accepted": False, "reason": "column 'timestamp' has 1 values that are not dates: row 7000002",
                    "rejected_blob": "rejected/sales.csv"}
        return {"accepted": True, "dataset": argument["dataset"], "trained": 6, "pass_rate": 0.5}

    rejected = {"accepted": False, "reason": "missing columns ['target']", "rejected_blob": "rejected/sales.csv"}
    return {
        "validate_table_upload": lambda a: TABLE if accepted else rejected,
        "submit_compute": lambda a: {"backend": "fake", "kind": a["kind"], "attempt": a["attempt"],
                                     "units_total": a["units_total"]},
        "compute_status": status,
        "cancel_compute": lambda h: {},
        "cancel_job_compute": lambda a: {"canceled": 1},
        "collect_run_results": collect,
        "cleanup": lambda a: {"removed": 9, "kept": False},
    }


def run(fakes: dict) -> tuple[ReplayHost, object]:
    host = ReplayHost(many_models, fakes)
    return host, host.run("run-1", {"blob": "sales.csv", "policy": POLICY})


def failure(fakes: dict) -> tuple[ReplayHost, str]:
    host = ReplayHost(many_models, fakes)
    with pytest.raises(OrchestrationFailed) as failed:
        host.run("run-1", {"blob": "sales.csv", "policy": POLICY})
    return host, str(failed.value)


def test_validate_train_collect_cleanup_with_progress_in_partitions():
    host, result = run(activities(["completed"]))
    assert [name for name, _ in host.calls if name != "compute_status"] == [
        "validate_table_upload", "submit_compute", "collect_run_results", "cleanup"]
    submit = next(argument for name, argument in host.calls if name == "submit_compute")
    # the partition count is the compute job's to find: the prepare step reads the table
    assert submit == {"job_id": "run-1", "units_total": 0, "attempt": 1, "kind": "many_models", "events_url": None}
    assert result == {"blob": "sales.csv", "accepted": True, "dataset": "sales", "trained": 6, "pass_rate": 0.5}
    assert [s["stage"] for s in host.custom_statuses].count("prepare") >= 1
    training = [s for s in host.custom_statuses if s["stage"] == "train"]
    assert sorted({s["partitions_done"] for s in training}) == [2, 4]  # the host keeps an episode's last
    assert training[-1]["partitions_total"] == 6 and training[-1]["models_per_minute"]
    assert host.custom_statuses[-1] == {"stage": "done", "blob": "sales.csv", "partitions_done": 6,
                                        "partitions_total": 6, "dataset": "sales"}


def test_a_failed_training_run_is_resubmitted_as_the_same_kind():
    host, _ = run(activities(["failed", "completed"]))
    submits = [argument for name, argument in host.calls if name == "submit_compute"]
    assert [(s["attempt"], s["kind"]) for s in submits] == [(1, "many_models"), (2, "many_models")]


def test_a_run_that_keeps_failing_is_canceled_and_cleaned_up():
    host, error = failure(activities(["failed"] * 3))
    assert "training run failed 3 times" in error
    assert [name for name, _ in host.calls][-2:] == ["cancel_job_compute", "cleanup"]


def test_a_rejected_table_ends_the_run_with_its_reason_and_submits_nothing():
    host, error = failure(activities(["completed"], accepted=False))
    assert "table rejected: missing columns ['target'] (moved to rejected/sales.csv)" in error
    assert [name for name, _ in host.calls] == ["validate_table_upload"]


def test_a_table_the_prepare_step_refuses_is_rejected_with_its_reason_and_cleaned_up():
    host, error = failure(activities(["completed"], refused_by_prepare=True))
    assert "table rejected: column 'timestamp' has 1 values that are not dates: row 7000002" in error
    assert [name for name, _ in host.calls if name != "compute_status"] == [
        "validate_table_upload", "submit_compute", "collect_run_results", "cleanup"]
    assert host.calls[-1] == ("cleanup", {"job_id": "run-1", "succeeded": False})


def test_a_canceled_training_run_fails_the_job():
    _, error = failure(activities(["canceled"]))
    assert "the training run was canceled" in error
