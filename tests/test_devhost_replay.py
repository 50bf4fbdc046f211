"""devhost's replay driver (devhost/episode.py) against small orchestrators and hand-checked histories.

Each test delivers events one by one, as devhost does, and checks the history the host wrote (event
types and ids in order) and what the SDK made of it: a wrong task id would hand a result to the
wrong task, and the outputs below would differ.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df
import pytest

from devhost.episode import Execution, RunActivity, StartTimer, run_episode, terminate
from devhost.history import (
    EventType,
    context_json,
    event,
    event_raised,
    execution_started,
    iso,
    leaves,
    task_completed,
    task_failed,
    timer_fired,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=2)


def begin(orchestrator, payload: object = None) -> tuple[Execution, object, object]:
    """A fresh execution and its first episode."""
    handle = df.Orchestrator.create(orchestrator)
    execution = Execution("inst", orchestrator.__name__, "exec-1", json.dumps(payload))
    outcome = run_episode(execution, handle, execution_started(T0, execution.name, execution.input, "inst", "exec-1"),
                          T0)
    return execution, handle, outcome


def shape(history: list[dict], start: int = 0) -> list[tuple[str, int]]:
    """(event type, id) pairs; the id is EventId, or the task id a completion refers to."""
    pairs = []
    for item in history[start:]:
        kind = EventType(item["EventType"])
        task = item.get("TaskScheduledId", item.get("TimerId", item["EventId"]))
        pairs.append((kind.name, task))
    return pairs


def ok(task_id: int, value: object, at: datetime = T0) -> dict:
    return task_completed(at, task_id, json.dumps(value))


def fail(task_id: int, message: str, at: datetime = T0) -> dict:
    return task_failed(at, task_id, f"Activity function 'x' failed: {message}", "traceback")


def sequence_and_fan_out(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("a", 1)
    pair = yield context.task_all([context.call_activity("b", first), context.call_activity("c", first)])
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    return {"first": first, "pair": pair, "woke": context.current_utc_datetime.isoformat()}


def test_task_ids_follow_the_order_the_generator_creates_tasks():
    execution, handle, outcome = begin(sequence_and_fan_out)
    assert shape(execution.history) == [("ORCHESTRATOR_STARTED", -1), ("EXECUTION_STARTED", -1),
                                        ("TASK_SCHEDULED", 0), ("ORCHESTRATOR_COMPLETED", -1)]
    assert outcome.work == [RunActivity("inst", "exec-1", 0, "a", "1", 1)]
    outcome = run_episode(execution, handle, ok(0, 10), T0)
    assert [(w.task_id, w.name, w.input) for w in outcome.work] == [(1, "b", "10"), (2, "c", "10")]
    # results out of order: the SDK still returns them in list order
    run_episode(execution, handle, ok(2, "C"), T0)
    outcome = run_episode(execution, handle, ok(1, "B"), T0 + timedelta(seconds=1))
    [timer] = outcome.work
    assert timer == StartTimer("inst", "exec-1", 3, T0 + timedelta(seconds=31))
    woke = T0 + timedelta(seconds=40)
    outcome = run_episode(execution, handle, timer_fired(woke, 3, iso(timer.fire_at)), woke)
    assert outcome.status == "Completed"
    assert outcome.output == {"first": 10, "pair": ["B", "C"], "woke": woke.isoformat()}  # clock = OrchestratorStarted
    assert shape(execution.history)[-3:] == [("TIMER_FIRED", 3), ("EXECUTION_COMPLETED", -1),
                                             ("ORCHESTRATOR_COMPLETED", -1)]
    assert execution.pending == {}


def retried(context: df.DurableOrchestrationContext):
    value = yield context.call_activity_with_retry("flaky", RETRY, "in")
    after = yield context.call_activity("next", value)
    return after


def test_a_retry_takes_a_timer_id_then_a_task_id_as_dtfx_records_them():
    execution, handle, _ = begin(retried)
    failed_at = T0 + timedelta(seconds=5)
    outcome = run_episode(execution, handle, fail(0, "boom", failed_at), failed_at)
    assert outcome.work == [StartTimer("inst", "exec-1", 1, failed_at + timedelta(seconds=2))]
    outcome = run_episode(execution, handle, timer_fired(failed_at, 1, "x"), failed_at + timedelta(seconds=2))
    assert outcome.work == [RunActivity("inst", "exec-1", 2, "flaky", '"in"', 2)]
    outcome = run_episode(execution, handle, ok(2, "value"), T0)
    assert outcome.work == [RunActivity("inst", "exec-1", 3, "next", '"value"', 1)]
    outcome = run_episode(execution, handle, ok(3, "done"), T0)
    assert (outcome.status, outcome.output) == ("Completed", "done")
    assert [pair for pair in shape(execution.history) if pair[0] not in ("ORCHESTRATOR_STARTED",
                                                                          "ORCHESTRATOR_COMPLETED")] == [
        ("EXECUTION_STARTED", -1), ("TASK_SCHEDULED", 0), ("TASK_FAILED", 0), ("TIMER_CREATED", 1),
        ("TIMER_FIRED", 1), ("TASK_SCHEDULED", 2), ("TASK_COMPLETED", 2), ("TASK_SCHEDULED", 3),
        ("TASK_COMPLETED", 3), ("EXECUTION_COMPLETED", -1)]


def test_the_last_failed_attempt_still_waits_one_retry_timer_then_fails_the_task():
    execution, handle, _ = begin(retried)
    run_episode(execution, handle, fail(0, "one"), T0)
    run_episode(execution, handle, timer_fired(T0, 1, "x"), T0)
    outcome = run_episode(execution, handle, fail(2, "two"), T0)
    assert outcome.status == "Running" and outcome.work == [StartTimer("inst", "exec-1", 3, T0 + timedelta(seconds=2))]
    outcome = run_episode(execution, handle, timer_fired(T0, 3, "x"), T0)
    assert outcome.status == "Failed"
    assert outcome.output.startswith("Orchestrator function 'retried' failed: Activity function 'x' failed: two")


def two_retries_in_parallel(context: df.DurableOrchestrationContext):
    results = yield context.task_all([context.call_activity_with_retry("p", RETRY, 1),
                                      context.call_activity_with_retry("q", RETRY, 2)])
    tail = yield context.call_activity("tail", results)
    return tail


def test_retries_inside_a_fan_out_number_in_event_order():
    """q fails first, then p: their timers are 2 and 3, their second attempts 4 and 5, tail 6.
    Had the host numbered them otherwise, the results would land on the wrong tasks."""
    execution, handle, _ = begin(two_retries_in_parallel)
    assert run_episode(execution, handle, fail(1, "q1"), T0).work[0].task_id == 2
    assert run_episode(execution, handle, fail(0, "p1"), T0).work[0].task_id == 3
    assert run_episode(execution, handle, timer_fired(T0, 3, "x"), T0).work == [
        RunActivity("inst", "exec-1", 4, "p", "1", 2)]
    assert run_episode(execution, handle, timer_fired(T0, 2, "x"), T0).work == [
        RunActivity("inst", "exec-1", 5, "q", "2", 2)]
    run_episode(execution, handle, ok(5, "Q"), T0)
    outcome = run_episode(execution, handle, ok(4, "P"), T0)
    assert outcome.work == [RunActivity("inst", "exec-1", 6, "tail", '["P", "Q"]', 1)]
    assert run_episode(execution, handle, ok(6, "end"), T0).output == "end"


def counter(context: df.DurableOrchestrationContext):
    count = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
    if count < 2:
        context.continue_as_new(count + 1)
        return None
    return count


def test_continue_as_new_ends_the_execution_with_the_next_input():
    execution, handle, outcome = begin(counter, 0)
    [timer] = outcome.work
    outcome = run_episode(execution, handle, timer_fired(T0, timer.task_id, iso(timer.fire_at)), T0)
    assert (outcome.status, outcome.output, outcome.work) == ("ContinuedAsNew", "1", [])
    assert shape(execution.history)[-2:] == [("CONTINUE_AS_NEW", -1), ("ORCHESTRATOR_COMPLETED", -1)]
    following = Execution("inst", "counter", "exec-2", outcome.output)
    run_episode(following, handle, execution_started(T0, "counter", "1", "inst", "exec-2"), T0)
    assert following.pending[0]["kind"] == "timer"  # ids start again at 0 in a new execution


def failing(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": "probe"})
    yield context.call_activity("probe", None)
    raise ValueError("input rejected: not a video")


def test_an_orchestrator_exception_fails_the_instance_with_its_message_and_status():
    execution, handle, _ = begin(failing)
    outcome = run_episode(execution, handle, ok(0, None), T0)
    assert outcome.status == "Failed"
    assert outcome.output == "Orchestrator function 'failing' failed: input rejected: not a video"
    assert outcome.custom_status == {"stage": "probe"} and outcome.custom_status_set
    completed = execution.history[-2]
    assert completed["EventType"] == EventType.EXECUTION_COMPLETED and completed["OrchestrationStatus"] == "Failed"


def sub_orchestrating(context: df.DurableOrchestrationContext):
    yield context.call_sub_orchestrator("child", None)


def test_actions_devhost_does_not_implement_fail_the_instance_by_name():
    _, _, outcome = begin(sub_orchestrating)
    assert outcome.status == "Failed"
    assert "devhost does not support CALL_SUB_ORCHESTRATOR actions" in outcome.output


def waiting(context: df.DurableOrchestrationContext):
    approval = yield context.wait_for_external_event("approve")
    done = yield context.call_activity("act", approval)
    return done


def test_an_external_event_takes_no_task_id():
    execution, handle, outcome = begin(waiting)
    assert outcome.work == [] and execution.next_id == 0
    outcome = run_episode(execution, handle, event_raised(T0, "approve", json.dumps({"ok": True})), T0)
    assert outcome.work == [RunActivity("inst", "exec-1", 0, "act", '{"ok": true}', 1)]


def test_stale_and_duplicate_events_are_refused():
    execution, handle, _ = begin(retried)
    assert not execution.accepts(ok(7, "nobody asked"))
    with pytest.raises(ValueError, match="not expected"):
        run_episode(execution, handle, ok(7, "nobody asked"), T0)
    run_episode(execution, handle, fail(0, "x"), T0)
    assert not execution.accepts(fail(0, "x"))  # the same result twice


def test_terminate_ends_without_running_user_code():
    execution, _, _ = begin(retried)
    outcome = terminate(execution, "canceled by user", T0)
    assert (outcome.status, outcome.output, execution.pending) == ("Terminated", "canceled by user", {})
    assert shape(execution.history)[-3:] == [("EXECUTION_TERMINATED", -1), ("EXECUTION_COMPLETED", -1),
                                             ("ORCHESTRATOR_COMPLETED", -1)]


def test_the_context_marks_earlier_episodes_as_played():
    execution, handle, _ = begin(retried)
    run_episode(execution, handle, fail(0, "x"), T0)
    next_episode = [*execution.history, event(EventType.ORCHESTRATOR_STARTED, T0)]
    context = json.loads(context_json("inst", None, next_episode))
    played = [item["IsPlayed"] for item in context["history"]]
    assert all(played[:-1]) and not played[-1]
    assert context["maximumShortTimerDuration"] and context["upperSchemaVersionNew"] == 2


def test_bookkeeping_survives_a_round_trip_through_json():
    execution, handle, _ = begin(two_retries_in_parallel)
    run_episode(execution, handle, fail(1, "q1"), T0)
    saved = json.loads(json.dumps(execution.bookkeeping()))
    restored = Execution("inst", execution.name, "exec-1", execution.input, list(execution.history)).restore(saved)
    assert restored.pending == execution.pending and restored.next_id == 3
    assert sorted(w.task_id for w in restored.pending_work()) == [0, 2]


def test_events_that_arrive_together_share_an_episode_with_the_same_ids():
    """As DTFx batches messages: both failures, both retry timers, both results, each in one episode;
    the ids come out as when they arrive one by one (retry events first in their batch)."""
    execution, handle, _ = begin(two_retries_in_parallel)
    timers = run_episode(execution, handle, [fail(1, "q1"), fail(0, "p1")], T0).work
    assert [timer.task_id for timer in timers] == [2, 3]
    attempts = run_episode(execution, handle, [timer_fired(T0, 3, "x"), timer_fired(T0, 2, "x")], T0).work
    assert [(work.task_id, work.name, work.attempt) for work in attempts] == [(4, "p", 2), (5, "q", 2)]
    tail = run_episode(execution, handle, [ok(5, "Q"), ok(4, "P")], T0).work
    assert tail == [RunActivity("inst", "exec-1", 6, "tail", '["P", "Q"]', 1)]
    episodes = [e for e in execution.history if e["EventType"] == EventType.ORCHESTRATOR_STARTED]
    assert len(episodes) == 4


def test_a_retry_event_behind_another_event_is_refused():
    execution, handle, _ = begin(two_retries_in_parallel)
    with pytest.raises(ValueError, match="retry events must come first"):
        run_episode(execution, handle, [ok(0, "P"), fail(1, "q1")], T0)
    with pytest.raises(ValueError, match="not expected"):
        run_episode(execution, handle, [ok(0, "P"), ok(0, "P")], T0)


# Azure/azure-functions-durable-python#603 (reported on SDK 1.5.0): an activity called with retry times
# out, its retry succeeds, the next yield is a task_all of new activities with retry, they all
# complete, and the orchestrator never wakes. prepare() has this shape (probe, then the split fan-out),
# so it is replayed here generically, with the events the extension writes for it.
RETRY3 = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
TIMEOUT = "Timeout value of 00:30:00 was exceeded by function: Functions.probe"


def retried_then_fan_out(context: df.DurableOrchestrationContext):
    first = yield context.call_activity_with_retry("first", RETRY3, "in")
    parts = yield context.task_all([context.call_activity_with_retry("part", RETRY3, i) for i in range(3)])
    return {"first": first, "parts": parts}


def late_duplicate(execution: Execution, handle, completion: dict) -> None:
    """An episode for a completion nobody waits for any more, as DTFx appends it (a redelivered
    activity finishing after its attempt was failed by the timeout): the SDK must ignore it."""
    execution._append(EventType.ORCHESTRATOR_STARTED, T0)
    execution.history.append(completion)
    state = json.loads(handle(context_json("inst", execution.input, execution.history)))
    assert len(leaves(state["actions"][0])) == execution.known_actions  # it scheduled nothing
    execution._append(EventType.ORCHESTRATOR_COMPLETED, T0)


@pytest.mark.parametrize("duplicate_before", [None, "retried_success", "fan_out", "part_fails", "last_part"])
def test_a_retried_activity_then_a_retried_fan_out_wakes_the_orchestrator(duplicate_before):
    execution, handle, outcome = begin(retried_then_fan_out)
    steps = {
        "retry_timer": [fail(0, TIMEOUT)],  # attempt 1 timed out -> retry timer 1
        "retried_success": [timer_fired(T0, 1, iso(T0))],  # -> attempt 2 is task 2
        "fan_out": [ok(2, "first")],  # -> task_all of parts 3, 4, 5
        "part_fails": [ok(3, "p0"), fail(4, "storage hiccup")],  # -> retry timer 6 for part 1
        "part_retry": [timer_fired(T0, 6, iso(T0))],  # -> part 1 again as task 7
        "last_part": [ok(5, "p2")],
        "done": [ok(7, "p1")],
    }
    for name, batch in steps.items():
        if name == duplicate_before:
            late_duplicate(execution, handle, ok(0, "first, late"))
        if name == "part_fails":  # as DTFx takes them: the retry event first in its episode
            batch = sorted(batch, key=lambda item: not execution.numbers_a_retry(item))
        outcome = run_episode(execution, handle, batch, T0)
    assert (outcome.status, outcome.output) == ("Completed", {"first": "first", "parts": ["p0", "p1", "p2"]})
    scheduled = [(item["EventId"], item["Name"]) for item in execution.history
                 if item["EventType"] == EventType.TASK_SCHEDULED]
    assert scheduled == [(0, "first"), (2, "first"), (3, "part"), (4, "part"), (5, "part"), (7, "part")]
