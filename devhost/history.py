"""History events and the orchestration context JSON, in the shapes the Durable extension sends.

The SDK replays user code against these PascalCase dicts (see shared/docs/durable-host-contract.md):
completion events find their task by id, OrchestratorStarted sets the orchestration clock, and
everything before the last OrchestratorStarted is marked as played.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import IntEnum


class EventType(IntEnum):
    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16


class ActionType(IntEnum):
    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


# Timer limits the extension passes (Azure Storage provider defaults); without them the SDK never
# splits a long timer.
MAXIMUM_SHORT_TIMER = "6.00:00:00"
LONG_TIMER_INTERVAL = "3.00:00:00"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def event(event_type: EventType, at: datetime, event_id: int = -1, **fields) -> dict:
    return {"EventType": int(event_type), "EventId": event_id, "IsPlayed": False, "Timestamp": iso(at), **fields}


def execution_started(at: datetime, name: str, input_text: str | None, instance_id: str, execution_id: str) -> dict:
    return event(EventType.EXECUTION_STARTED, at, Name=name, Version=None, Input=input_text,
                 OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id})


def task_completed(at: datetime, task_id: int, result_text: str | None) -> dict:
    return event(EventType.TASK_COMPLETED, at, TaskScheduledId=task_id, Result=result_text)


def task_failed(at: datetime, task_id: int, reason: str, details: str) -> dict:
    return event(EventType.TASK_FAILED, at, TaskScheduledId=task_id, Reason=reason, Details=details)


def timer_fired(at: datetime, timer_id: int, fire_at: str) -> dict:
    return event(EventType.TIMER_FIRED, at, TimerId=timer_id, FireAt=fire_at)


def event_raised(at: datetime, name: str, input_text: str | None) -> dict:
    return event(EventType.EVENT_RAISED, at, Name=name, Input=input_text)


def completed_task_id(history_event: dict) -> int | None:
    """The task id a completion event resolves (None for events that resolve no numbered task)."""
    kind = history_event["EventType"]
    if kind in (EventType.TASK_COMPLETED, EventType.TASK_FAILED):
        return history_event["TaskScheduledId"]
    if kind == EventType.TIMER_FIRED:
        return history_event["TimerId"]
    return None


def context_json(instance_id: str, input_text: str | None, history: list[dict]) -> str:
    """The orchestration trigger's payload: events before the current episode marked as played."""
    current = max(i for i, item in enumerate(history) if item["EventType"] == EventType.ORCHESTRATOR_STARTED)
    played = [{**item, "IsPlayed": i < current} for i, item in enumerate(history)]
    return json.dumps({
        "history": played, "input": input_text, "instanceId": instance_id, "isReplaying": False,
        "parentInstanceId": None, "upperSchemaVersion": 1, "upperSchemaVersionNew": 2,
        "maximumShortTimerDuration": MAXIMUM_SHORT_TIMER, "longRunningTimerIntervalDuration": LONG_TIMER_INTERVAL,
    })


def leaves(actions: list[dict]) -> list[dict]:
    """WhenAll/WhenAny flattened: the leaf actions in the order the SDK numbered them."""
    flat = []
    for action in actions:
        if action.get("actionType") in (ActionType.WHEN_ANY, ActionType.WHEN_ALL):
            flat.extend(leaves(action.get("compoundActions", [])))
        else:
            flat.append(action)
    return flat
