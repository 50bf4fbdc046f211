"""One orchestration episode: deliver new events, replay through the SDK's handler, apply new actions.

Pure bookkeeping, no I/O and no clock of its own, so the persistent engine and the in-memory test
host share it. The task ids the host assigns must be the ones the SDK assigns during replay: in
history order, every new activity and timer, plus for CallActivityWithRetry a timer after each
failed attempt (the last one included, as DTFx does) and the rescheduled task after each retry
timer. Events that number a retry never resume the generator, so as long as they come first in an
episode their ids precede those of the actions the generator yields in it. The engine applies one
event per episode; the test host batches what arrives at the same moment."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import azure.functions as func

from .history import ActionType, EventType, completed_task_id, context_json, event, iso, leaves, parse_iso

Handle = Callable[[func.OrchestrationContext], str]
ERROR_LABEL = "\n\n$OutOfProcData$:"
SUPPORTED_ACTIONS = {ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY, ActionType.CONTINUE_AS_NEW,
                     ActionType.CREATE_TIMER, ActionType.WAIT_FOR_EXTERNAL_EVENT}


@dataclass(frozen=True)
class RunActivity:
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    attempt: int


@dataclass(frozen=True)
class StartTimer:
    instance_id: str
    execution_id: str
    task_id: int  # the timer's id: timers take ids from the same sequence as activities
    fire_at: datetime


Work = RunActivity | StartTimer


@dataclass
class Outcome:
    """What an episode left: the runtime status, output or error, custom status, and work to start."""

    status: str  # Running, Completed, Failed, ContinuedAsNew, Terminated
    output: Any = None  # Completed: the value; Failed/Terminated: the message; ContinuedAsNew: the input text
    custom_status: Any = None
    custom_status_set: bool = False
    work: list[Work] = field(default_factory=list)


@dataclass
class Execution:
    """One execution of one instance: its history and what the host is still waiting for."""

    instance_id: str
    name: str
    execution_id: str
    input: str | None
    history: list[dict] = field(default_factory=list)
    next_id: int = 0
    known_actions: int = 0
    pending: dict[int, dict] = field(default_factory=dict)  # task/timer id -> what it is

    def bookkeeping(self) -> dict:
        return {"next_id": self.next_id, "known_actions": self.known_actions,
                "pending": {str(key): value for key, value in self.pending.items()}}

    def restore(self, bookkeeping: dict) -> Execution:
        self.next_id, self.known_actions = bookkeeping["next_id"], bookkeeping["known_actions"]
        self.pending = {int(key): value for key, value in bookkeeping["pending"].items()}
        return self

    def accepts(self, new_event: dict) -> bool:
        """Whether the event is for this execution as it stands (stale or duplicate ones are not)."""
        kind = new_event["EventType"]
        if kind == EventType.EXECUTION_STARTED:
            return not self.history
        if kind == EventType.EVENT_RAISED:
            return bool(self.history)
        task_id = completed_task_id(new_event)
        return task_id is not None and task_id in self.pending

    def numbers_a_retry(self, new_event: dict) -> bool:
        """Whether applying the event makes the host number a retry timer or a next attempt."""
        task_id = completed_task_id(new_event)
        item = self.pending.get(task_id) if task_id is not None else None
        if item is None:
            return False
        if new_event["EventType"] == EventType.TASK_FAILED:
            return item["kind"] == "activity" and bool(item["retry"])
        retry_of = item.get("retry_of") if new_event["EventType"] == EventType.TIMER_FIRED else None
        return bool(retry_of) and retry_of["attempt"] < retry_of["retry"]["maxNumberOfAttempts"]

    def _allocate(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _append(self, event_type: EventType, at: datetime, event_id: int = -1, **fields) -> None:
        self.history.append(event(event_type, at, event_id, **fields))

    def _schedule_activity(self, name: str, input_text: str | None, retry: dict | None, attempt: int,
                           now: datetime) -> RunActivity:
        task_id = self._allocate()
        self._append(EventType.TASK_SCHEDULED, now, task_id, Name=name, Input=input_text)
        self.pending[task_id] = {"kind": "activity", "name": name, "input": input_text, "retry": retry,
                                 "attempt": attempt}
        return RunActivity(self.instance_id, self.execution_id, task_id, name, input_text, attempt)

    def _schedule_timer(self, fire_at: datetime, now: datetime, retry_of: dict | None = None) -> StartTimer:
        timer_id = self._allocate()
        self._append(EventType.TIMER_CREATED, now, timer_id, FireAt=iso(fire_at))
        self.pending[timer_id] = {"kind": "timer", "fire_at": iso(fire_at), "retry_of": retry_of}
        return StartTimer(self.instance_id, self.execution_id, timer_id, fire_at)

    def pending_work(self) -> list[Work]:
        """Everything outstanding, as work to (re)start: for recovery after a restart."""
        work: list[Work] = []
        for task_id, item in sorted(self.pending.items()):
            if item["kind"] == "activity":
                work.append(RunActivity(self.instance_id, self.execution_id, task_id, item["name"], item["input"],
                                        item["attempt"]))
            else:
                work.append(StartTimer(self.instance_id, self.execution_id, task_id, parse_iso(item["fire_at"])))
        return work


def run_episode(execution: Execution, handle: Handle, new_events: dict | list[dict], now: datetime) -> Outcome:
    """Append one episode with one or more new events to the history and return what it decided.

    Several events may share an episode (as DTFx delivers messages that arrive together) provided
    the ones that make the host number a retry timer or attempt come first: those never resume the
    generator, so their ids precede the ids of whatever it yields in the episode.
    """
    batch = [new_events] if isinstance(new_events, dict) else list(new_events)
    _check_batch(execution, batch)
    execution._append(EventType.ORCHESTRATOR_STARTED, now)
    resolved = []
    for new_event in batch:
        execution.history.append(new_event)
        task_id = completed_task_id(new_event)
        if task_id is not None:
            resolved.append((execution.pending.pop(task_id), new_event))
    context = func.OrchestrationContext(context_json(execution.instance_id, execution.input, execution.history))
    try:
        state = json.loads(handle(context))
    except Exception as error:  # noqa: BLE001 - the SDK reports an orchestrator failure by raising
        message, custom = _failure_message(error)
        outcome = Outcome("Failed", f"Orchestrator function '{execution.name}' failed: {message}",
                          custom, custom is not None)
        return _finish(execution, outcome, now)
    outcome = Outcome("Running", custom_status=state.get("customStatus"),
                      custom_status_set="customStatus" in state)
    for item, new_event in resolved:
        outcome.work.extend(_retry_follow_up(execution, item, new_event, now))
    new_actions = leaves(state["actions"][0] if state.get("actions") else [])[execution.known_actions:]
    execution.known_actions += len(new_actions)
    unsupported = sorted({a["actionType"] for a in new_actions} - set(SUPPORTED_ACTIONS))
    if unsupported:
        names = ", ".join(ActionType(kind).name for kind in unsupported)
        outcome.status, outcome.output = "Failed", (f"Orchestrator function '{execution.name}' failed: "
                                                    f"devhost does not support {names} actions")
        return _finish(execution, outcome, now)
    continued = [action.get("input") for action in new_actions if action["actionType"] == ActionType.CONTINUE_AS_NEW]
    for action in new_actions:
        kind = action["actionType"]
        if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
            outcome.work.append(execution._schedule_activity(action["functionName"], action.get("input"),
                                                             action.get("retryOptions"), 1, now))
        elif kind == ActionType.CREATE_TIMER:
            outcome.work.append(execution._schedule_timer(parse_iso(action["fireAt"]), now))
    if state.get("isDone"):
        if continued:
            outcome.status, outcome.output = "ContinuedAsNew", continued[-1]
        else:
            outcome.status, outcome.output = "Completed", state.get("output")
        outcome.work.clear()
    return _finish(execution, outcome, now)


def terminate(execution: Execution, reason: str, now: datetime) -> Outcome:
    """A terminate request ends the execution without running user code, as DTFx does."""
    execution._append(EventType.ORCHESTRATOR_STARTED, now)
    execution._append(EventType.EXECUTION_TERMINATED, now, Input=reason)
    return _finish(execution, Outcome("Terminated", reason), now)


def _check_batch(execution: Execution, batch: list[dict]) -> None:
    seen: set[int] = set()
    numbering_allowed = True
    for new_event in batch:
        task_id = completed_task_id(new_event)
        if not execution.accepts(new_event) or task_id in seen:
            raise ValueError(f"event {new_event['EventType']} is not expected by {execution.instance_id} "
                             f"execution {execution.execution_id}")
        if task_id is not None:
            seen.add(task_id)
        if execution.numbers_a_retry(new_event) and not numbering_allowed:
            raise ValueError("retry events must come first in an episode (their ids precede new actions')")
        numbering_allowed = numbering_allowed and execution.numbers_a_retry(new_event)


def _retry_follow_up(execution: Execution, resolved: dict, new_event: dict, now: datetime) -> list[Work]:
    """CallActivityWithRetry as DTFx runs it: failure -> retry timer -> next attempt (or the error)."""
    if resolved["kind"] == "activity" and resolved["retry"] and new_event["EventType"] == EventType.TASK_FAILED:
        delay = timedelta(milliseconds=resolved["retry"]["firstRetryIntervalInMilliseconds"])
        return [execution._schedule_timer(now + delay, now, retry_of=resolved)]
    previous = resolved.get("retry_of") if resolved["kind"] == "timer" else None
    if previous and previous["attempt"] < previous["retry"]["maxNumberOfAttempts"]:
        return [execution._schedule_activity(previous["name"], previous["input"], previous["retry"],
                                             previous["attempt"] + 1, now)]
    return []


def _failure_message(error: Exception) -> tuple[str, Any]:
    """The orchestrator's own error message and custom status, from the SDK's out-of-proc error."""
    text = str(error)
    if ERROR_LABEL not in text:
        return text or type(error).__name__, None
    message, _, state_text = text.partition(ERROR_LABEL)
    try:
        state = json.loads(state_text)
    except json.JSONDecodeError:
        return message, None
    return state.get("error") or message, state.get("customStatus")


def _finish(execution: Execution, outcome: Outcome, now: datetime) -> Outcome:
    if outcome.status == "ContinuedAsNew":
        execution._append(EventType.CONTINUE_AS_NEW, now, Result=outcome.output)
    elif outcome.status != "Running":
        result = json.dumps(outcome.output) if outcome.status == "Completed" else outcome.output
        execution._append(EventType.EXECUTION_COMPLETED, now, OrchestrationStatus=outcome.status, Result=result)
    if outcome.status != "Running":
        execution.pending.clear()
        outcome.work.clear()
    execution._append(EventType.ORCHESTRATOR_COMPLETED, now)
    return outcome
