"""devhost's engine over its SQLite store, driven by hand: lifecycle, terminate, purge, queries, and
recovery after a crash (a fresh engine on the same file) without re-running completed activities."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df
import pytest

from devhost.engine import Engine, InstanceExists, UnknownOrchestrator
from devhost.episode import RunActivity, StartTimer
from devhost.history import EventType, iso, task_completed, timer_fired
from devhost.store import Store


def fan_out(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": "fan-out"})
    values = yield context.task_all([context.call_activity("work", i) for i in range(3)])
    return sum(values)


def looping(context: df.DurableOrchestrationContext):
    round_ = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=5))
    if round_ < 2:
        context.continue_as_new(round_ + 1)
        return None
    return round_


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def make_engine(tmp_path):
    """An engine whose work is collected instead of run; a second call reopens the same file."""

    def make() -> tuple[Engine, list]:
        work: list = []
        orchestrators = {"fan_out": df.Orchestrator.create(fan_out), "looping": df.Orchestrator.create(looping)}
        return Engine(Store(tmp_path / "devhost.sqlite"), orchestrators, work.extend, Clock()), work

    return make


def pump(engine: Engine) -> None:
    while (item := engine.store.next_event()) is not None:
        engine.process(item)


def finish(engine: Engine, work: RunActivity, value: object) -> None:
    engine.deliver(work.instance_id, work.execution_id, task_completed(engine.clock(), work.task_id,
                                                                       json.dumps(value)))


def test_an_instance_goes_pending_running_completed_with_status_as_the_extension_reports_it(make_engine):
    engine, work = make_engine()
    instance_id = engine.start("fan_out", "job-1", json.dumps({"x": 1}))
    assert engine.status(instance_id)["runtimeStatus"] == "Pending"
    pump(engine)
    assert [(w.task_id, w.input) for w in work] == [(0, "0"), (1, "1"), (2, "2")]
    running = engine.status(instance_id)
    assert running["runtimeStatus"] == "Running" and running["customStatus"] == {"stage": "fan-out"}
    for item, value in zip(work, (10, 20, 30), strict=True):
        finish(engine, item, value)
    pump(engine)
    status = engine.status(instance_id, show_history=True)
    assert status["runtimeStatus"] == "Completed" and status["output"] == 60
    assert status["input"] == '{"x": 1}'  # the input as JSON text, as the extension returns a Python client's input
    assert status["createdTime"].endswith("Z") and len(status["createdTime"]) == 20
    types = [event["EventType"] for event in status["historyEvents"]]
    assert types.count(EventType.TASK_COMPLETED) == 3 and types[-2] == EventType.EXECUTION_COMPLETED


def test_a_new_engine_on_the_same_file_reruns_only_unfinished_activities(make_engine):
    engine, work = make_engine()
    engine.start("fan_out", "job-1", None)
    pump(engine)
    first, second, third = work
    finish(engine, first, 1)
    pump(engine)  # applied to the history
    finish(engine, second, 2)  # arrived, not yet applied: still in the inbox at the "crash"
    engine.store.close()

    restarted, _ = make_engine()
    assert restarted.recover() == [third]  # the completed one and the one waiting in the inbox are not re-run
    finish(restarted, third, 3)
    pump(restarted)
    assert restarted.status("job-1")["output"] == 6


def test_timers_are_recovered_with_their_fire_time(make_engine):
    engine, work = make_engine()
    engine.start("looping", "loop", "0")
    pump(engine)
    [timer] = work
    engine.store.close()
    restarted, _ = make_engine()
    assert restarted.recover() == [timer] and isinstance(timer, StartTimer)


def test_continue_as_new_starts_a_fresh_history_under_a_new_execution(make_engine):
    engine, work = make_engine()
    engine.start("looping", "loop", "0")
    pump(engine)
    executions = []
    for _ in range(3):
        timer = work.pop()
        executions.append(timer.execution_id)
        engine.deliver(timer.instance_id, timer.execution_id, timer_fired(engine.clock(), timer.task_id,
                                                                          iso(timer.fire_at)))
        pump(engine)
    status = engine.status("loop", show_history=True)
    assert status["runtimeStatus"] == "Completed" and status["output"] == 2 and status["input"] == "2"
    assert len(set(executions)) == 3
    assert [e["EventType"] for e in status["historyEvents"]].count(EventType.EXECUTION_STARTED) == 1


def test_terminate_then_late_results_are_dropped(make_engine):
    engine, work = make_engine()
    engine.start("fan_out", "job-1", None)
    pump(engine)
    assert engine.terminate("job-1", "canceled by user") == "accepted"
    pump(engine)
    finish(engine, work[0], 1)
    pump(engine)
    status = engine.status("job-1")
    assert (status["runtimeStatus"], status["output"]) == ("Terminated", "canceled by user")
    assert engine.terminate("job-1", "again") == "gone" and engine.terminate("nobody", "x") == "not_found"
    assert engine.raise_event("job-1", "go", None) == "gone"
    assert engine.store.inbox("job-1") == []


def test_starting_over_a_running_instance_is_refused_and_over_an_ended_one_replaces_it(make_engine):
    engine, _ = make_engine()
    engine.start("fan_out", "job-1", None)
    with pytest.raises(InstanceExists, match="Pending"):
        engine.start("fan_out", "job-1", None)
    pump(engine)
    engine.terminate("job-1", "stop")
    pump(engine)
    engine.start("fan_out", "job-1", '"again"')
    status = engine.status("job-1", show_history=True)
    assert (status["runtimeStatus"], status["input"], status["historyEvents"]) == ("Pending", '"again"', [])
    with pytest.raises(UnknownOrchestrator, match="'nope'"):
        engine.start("nope", None, None)


def test_queries_and_purge(make_engine):
    engine, _ = make_engine()
    for name in ("a-1", "a-2", "b-1"):
        engine.start("fan_out", name, None)
    pump(engine)
    engine.terminate("a-2", "stop")
    pump(engine)
    ids = lambda rows: sorted(row["instanceId"] for row in rows)  # noqa: E731
    assert ids(engine.query({"Running"})) == ["a-1", "b-1"]
    assert ids(engine.query(prefix="a-")) == ["a-1", "a-2"]
    assert ids(engine.query(created_from=datetime(2030, 1, 1, tzinfo=UTC))) == []
    assert "input" not in engine.query()[0]
    assert engine.purge("a-1") == "not_terminal" and engine.purge("zzz") == "not_found"
    assert engine.purge_by(datetime(2000, 1, 1, tzinfo=UTC), None, None) == 1  # only a-2 has ended
    assert engine.status("a-2") is None and engine.status("a-1") is not None
