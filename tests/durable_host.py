"""A test host for orchestrators: builds histories the way the Durable extension does and runs
the orchestrator through the Durable SDK's own replay engine (Orchestrator.create(...)).

Activities are plain callables; timers fire at once but advance the orchestration clock to their
fireAt; CallActivityWithRetry failures are retried as the extension records them (TaskFailed,
TimerCreated, TimerFired, TaskScheduled: three ids per failed attempt); ContinueAsNew restarts
with a fresh history. See ../shared/docs/durable-host-contract.md.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _leaves(actions: list) -> list[dict]:
    flat = []
    for action in actions:
        if action.get("actionType") in (11, 12) and "compoundActions" in action:
            flat.extend(_leaves(action["compoundActions"]))
        else:
            flat.append(action)
    return flat


class OrchestrationFailed(RuntimeError):
    pass


@dataclass
class ReplayHost:
    orchestrator: Callable
    activities: dict[str, Callable[[object], object]]
    clock: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    max_episodes: int = 2000
    custom_statuses: list = field(default_factory=list)
    calls: list[tuple[str, object]] = field(default_factory=list)
    executions: int = 0
    max_history: int = 0

    def _event(self, event_type: int, event_id: int = -1, **fields) -> dict:
        return {"EventType": event_type, "EventId": event_id, "IsPlayed": False, "Timestamp": _iso(self.clock),
                **fields}

    def run(self, instance_id: str, payload: object) -> object:
        handle = df.Orchestrator.create(self.orchestrator)
        while True:
            self.executions += 1
            outcome = self._run_execution(handle, instance_id, payload)
            if outcome[0] == "continue":
                payload = outcome[1]
                continue
            return outcome[1]

    def _run_execution(self, handle, instance_id: str, payload: object):
        history = [self._event(12), self._event(0, Name="orchestrator", Version=None, Input=json.dumps(payload),
                                                OrchestrationInstance={"InstanceId": instance_id,
                                                                       "ExecutionId": str(self.executions)})]
        known, next_id = 0, 0
        for _ in range(self.max_episodes):
            context = {"history": history, "input": json.dumps(payload), "instanceId": instance_id,
                       "isReplaying": False, "parentInstanceId": None, "upperSchemaVersion": 1,
                       "upperSchemaVersionNew": 2, "maximumShortTimerDuration": "6.00:00:00",
                       "longRunningTimerIntervalDuration": "3.00:00:00"}
            try:
                state = json.loads(handle(json.dumps(context)))
            except Exception as error:
                raise OrchestrationFailed(str(error).split("\n\n$OutOfProcData$")[0]) from error
            self.max_history = max(self.max_history, len(history))
            if "customStatus" in state:
                self.custom_statuses.append(state["customStatus"])
            for event in history:
                event["IsPlayed"] = True
            history.append(self._event(13))
            leaves = _leaves(state["actions"][0]) if state["actions"] else []
            new, known = leaves[known:], len(leaves)
            for action in new:
                if action["actionType"] == 4:
                    return "continue", json.loads(action["input"])
            if state["isDone"]:
                output = state.get("output")
                return "done", json.loads(output) if isinstance(output, str) else output
            if not new:
                raise AssertionError("orchestrator is waiting but scheduled nothing new")
            scheduled = []
            for action in new:
                scheduled.append((next_id, action))
                if action["actionType"] == 5:
                    history.append(self._event(10, next_id, FireAt=action["fireAt"]))
                else:
                    history.append(self._event(4, next_id, Name=action["functionName"], Input=action["input"]))
                next_id += 1
            history.append(self._event(12))
            for task_id, action in scheduled:
                next_id = self._complete(history, task_id, action, next_id)
        raise AssertionError("orchestration did not finish within the episode budget")

    def _complete(self, history: list, task_id: int, action: dict, next_id: int) -> int:
        if action["actionType"] == 5:
            fire_at = datetime.fromisoformat(action["fireAt"].replace("Z", "+00:00"))
            self.clock = max(self.clock, fire_at)
            history.append(self._event(11, -1, TimerId=task_id, FireAt=action["fireAt"]))
            return next_id
        attempts = action.get("retryOptions", {}).get("maxNumberOfAttempts", 1)
        for attempt in range(1, attempts + 1):
            name, argument = action["functionName"], json.loads(action["input"])
            self.calls.append((name, argument))
            try:
                result = self.activities[name](argument)
            except Exception as error:  # noqa: BLE001 - becomes TaskFailed, as the extension records it
                history.append(self._event(6, -1, TaskScheduledId=task_id, Reason=str(error),
                                           Details=traceback.format_exc()))
                if attempt == attempts:
                    return next_id
                delay = action["retryOptions"]["firstRetryIntervalInMilliseconds"] / 1000
                self.clock += timedelta(seconds=delay)
                history.append(self._event(10, next_id, FireAt=_iso(self.clock)))
                history.append(self._event(11, -1, TimerId=next_id, FireAt=_iso(self.clock)))
                task_id, next_id = next_id + 1, next_id + 2
                history.append(self._event(4, task_id, Name=name, Input=action["input"]))
                continue
            history.append(self._event(5, -1, TaskScheduledId=task_id, Result=json.dumps(result)))
            return next_id
        return next_id
