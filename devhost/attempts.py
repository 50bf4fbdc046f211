"""Activity invocations that the host can fail from outside: functionTimeout and a full scratch disk.

Each invocation runs in a thread of its own, while the pool thread that started it waits for the
first of three outcomes: the function's own result, the timeout (failed with the host's
FunctionTimeoutException wording, as the Durable extension reports it), or a full disk (failed with
the OSError ENOSPC the writer would have got). Whichever comes first is the one result delivered;
a later one is logged as `activity.late` and dropped, so a task is never answered twice.

The real host restarts the language worker process that ran a timed-out invocation (docs:
functions-timeout-duration; host: WebScriptHostExceptionHandler.RestartWorkerWithInvocationIdAsync).
A Python thread cannot be killed, so devhost abandons it instead: its pool slot is freed at once,
the thread runs on until the function returns (its `finally` blocks and scratch cleanup run, which
a killed worker's would not), and its result is discarded. `status()` counts such threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from . import log
from .activity_io import failure, timeout_failure
from .episode import RunActivity
from .history import task_failed
from .scratch import ScratchMeter


class Attempt:
    """One invocation's single result: the first `settle` wins, later ones are refused."""

    def __init__(self, work: RunActivity) -> None:
        self.work = work
        self.outcome: dict | None = None
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._settled = threading.Event()

    def settle(self, event: dict) -> bool:
        with self._lock:
            if self.outcome is not None:
                return False
            self.outcome = event
        self._settled.set()
        return True

    def wait(self, timeout: float | None) -> bool:
        return self._settled.wait(timeout)


class ActivityRunner:
    def __init__(self, invoke: Callable[[RunActivity], dict], function_name: Callable[[str], str],
                 timeout: float | None, clock: Callable[[], datetime], meter: ScratchMeter | None = None) -> None:
        self.invoke = invoke
        self.function_name = function_name  # the name the host reports (`Functions.<name>`)
        self.timeout = timeout
        self.clock = clock
        self.meter = meter
        self._lock = threading.Lock()
        self._running: set[Attempt] = set()  # not settled yet
        self._abandoned: set[Attempt] = set()  # settled from outside, thread still running

    def run(self, work: RunActivity) -> dict:
        """Start the invocation and block until it has an outcome; returns the one event to deliver."""
        attempt = Attempt(work)
        with self._lock:
            self._running.add(attempt)
        log.event("activity.begin", **_where(work))
        threading.Thread(target=self._invoke, args=(attempt,), name=f"devhost-activity-{work.name}-{work.task_id}",
                         daemon=True).start()
        if not attempt.wait(self.timeout):
            reason, details = timeout_failure(work.name, self.function_name(work.name), self.timeout)
            self._fail(attempt, task_failed(self.clock(), work.task_id, reason, details))
        attempt.wait(None)
        outcome = attempt.outcome
        log.event("activity.end", **_where(work), outcome=outcome.get("Reason", "ok"),
                  seconds=round(time.monotonic() - attempt.started, 3))
        return outcome

    def fail_running(self, error: OSError) -> None:
        """Fail every invocation still running with `error`, as the OS fails writers on a full disk."""
        with self._lock:
            running = list(self._running)
        for attempt in running:
            work = attempt.work
            self._fail(attempt, task_failed(self.clock(), work.task_id, *failure(work.name, error)))

    def status(self) -> dict:
        with self._lock:
            return {"running": len(self._running), "abandoned": len(self._abandoned)}

    def _fail(self, attempt: Attempt, event: dict) -> None:
        if attempt.settle(event):
            with self._lock:
                self._running.discard(attempt)
                self._abandoned.add(attempt)
            log.event("activity.abandoned", logging.WARNING, **_where(attempt.work), reason=event["Reason"])

    def _invoke(self, attempt: Attempt) -> None:
        work = attempt.work
        try:
            if self.meter is None:
                event = self.invoke(work)
            else:
                with self.meter.running():
                    event = self.invoke(work)
        except BaseException as error:  # noqa: BLE001 - the pool thread waits for an outcome; always give one
            event = task_failed(self.clock(), work.task_id, *failure(work.name, error))
        if attempt.settle(event):
            with self._lock:
                self._running.discard(attempt)
            return
        with self._lock:
            self._abandoned.discard(attempt)
        log.event("activity.late", logging.WARNING, **_where(attempt.work), discarded=event.get("Reason", "ok"),
                  seconds=round(time.monotonic() - attempt.started, 3))


def _where(work: RunActivity) -> dict:
    return {"instance": work.instance_id, "execution": work.execution_id, "name": work.name, "task": work.task_id,
            "attempt": work.attempt}
