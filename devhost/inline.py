"""An in-memory host for orchestrator tests: the same episodes as devhost, on a simulated clock.

Activities are plain callables run synchronously when scheduled; their results, and each timer at
its fireAt, are delivered in due-time order, what is due at the same moment in one episode (see
episode.py), so a 3-hour monitor loop replays in milliseconds with the histories, task ids and
retries the real host produces.
"""

from __future__ import annotations

import heapq
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import azure.durable_functions as df

from .activity_io import decode_input, encode_output, failure
from .episode import Execution, RunActivity, StartTimer, run_episode
from .history import event_raised, execution_started, iso, task_completed, task_failed, timer_fired


class OrchestrationFailed(RuntimeError):
    """The orchestration ended Failed; the message is its status output."""


@dataclass
class ReplayHost:
    orchestrator: Callable  # the orchestrator's generator function
    activities: dict[str, Callable[[object], object]]
    clock: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    max_episodes: int = 20000
    custom_statuses: list = field(default_factory=list)
    calls: list[tuple[str, object]] = field(default_factory=list)
    executions: int = 0
    max_history: int = 0
    raised: list[tuple[datetime, str, object]] = field(default_factory=list)

    def raise_event(self, at: datetime, name: str, payload: object = None) -> None:
        """Deliver an external event at `at` (an activity fake can call this, as a backend would)."""
        self.raised.append((at, name, payload))

    def run(self, instance_id: str, payload: object) -> object:
        """Run to the end, continuing as new as often as asked; return the output or raise."""
        handle = df.Orchestrator.create(self.orchestrator)
        input_text = json.dumps(payload)
        while True:
            self.executions += 1
            execution = Execution(instance_id, self.orchestrator.__name__, str(self.executions), input_text)
            outcome = self._run_execution(execution, handle)
            if outcome.status == "ContinuedAsNew":
                input_text = outcome.output
                continue
            if outcome.status == "Failed":
                raise OrchestrationFailed(outcome.output)
            return outcome.output

    def _run_execution(self, execution: Execution, handle):
        sequence = itertools.count()
        due = [(self.clock, next(sequence), execution_started(self.clock, execution.name, execution.input,
                                                              execution.instance_id, execution.execution_id))]
        for _ in range(self.max_episodes):
            while self.raised:
                at, name, payload = self.raised.pop()
                heapq.heappush(due, (max(at, self.clock), next(sequence),
                                     event_raised(max(at, self.clock), name, json.dumps(payload))))
            if not due:
                raise AssertionError("the orchestration is waiting, but nothing it waits for is pending")
            batch = self._next_batch(execution, due)
            outcome = run_episode(execution, handle, batch, self.clock)
            self.max_history = max(self.max_history, len(execution.history))
            if outcome.custom_status_set:
                self.custom_statuses.append(outcome.custom_status)
            if outcome.status != "Running":
                return outcome
            for work in outcome.work:
                if isinstance(work, StartTimer):
                    heapq.heappush(due, (work.fire_at, next(sequence),
                                         timer_fired(work.fire_at, work.task_id, iso(work.fire_at))))
                else:
                    heapq.heappush(due, (self.clock, next(sequence), self._call(work)))
        raise AssertionError("orchestration did not finish within the episode budget")

    def _next_batch(self, execution: Execution, due: list) -> list[dict]:
        """Everything due at the earliest moment, as DTFx takes messages that arrive together; an
        event that numbers a retry only at the front of a batch (see run_episode)."""
        at = due[0][0]
        self.clock = max(self.clock, at)
        batch: list[dict] = []
        while due and due[0][0] == at:
            if batch and execution.numbers_a_retry(due[0][2]) and not all(map(execution.numbers_a_retry, batch)):
                break
            batch.append(heapq.heappop(due)[2])
        return batch

    def _call(self, work: RunActivity) -> dict:
        argument = decode_input(work.input)
        self.calls.append((work.name, argument))
        try:
            result = self.activities[work.name](argument)
        except Exception as error:  # noqa: BLE001 - becomes TaskFailed, as the extension records it
            return task_failed(self.clock, work.task_id, *failure(work.name, error))
        return task_completed(self.clock, work.task_id, encode_output(result))
