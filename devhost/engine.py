"""The orchestration engine: instance lifecycle over the SQLite store, one dispatcher thread.

Every change to an instance goes through its inbox (start, activity results, timers, raised events,
terminate) and is applied by the single dispatcher thread as one episode in one transaction; the
work an episode starts (activities, timers) is handed out only after it is committed. After a
restart, `recover()` hands out again whatever is pending and has no result in the inbox yet: a
completed activity is never run again, one in flight at the kill is (at-least-once, as in Azure).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from . import log
from .episode import Execution, Handle, Outcome, Work, run_episode, terminate
from .history import EventType, event, event_raised, execution_started, iso, parse_iso
from .store import EMPTY_BOOKKEEPING, InboxItem, InstanceRow, Store

TERMINAL = {"Completed", "Failed", "Terminated", "Canceled"}
RUNNING = {"Pending", "Running", "ContinuedAsNew", "Suspended"}
TERMINATE_REQUEST = "devhost.terminate"  # inbox-only marker; the history gets ExecutionTerminated


class UnknownOrchestrator(ValueError):
    pass


class InstanceExists(RuntimeError):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


def status_time(text: str) -> str:
    """Status times as the extension prints them: seconds precision, `Z`."""
    return parse_iso(text).strftime("%Y-%m-%dT%H:%M:%SZ")


class Engine:
    def __init__(self, store: Store, orchestrators: dict[str, Handle], on_work: Callable[[list[Work]], None],
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.orchestrators = orchestrators
        self.on_work = on_work
        self.clock = clock
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # client operations (the Durable HTTP API calls these) -----------------------------------------
    def start(self, name: str, instance_id: str | None, input_text: str | None) -> str:
        if name not in self.orchestrators:
            raise UnknownOrchestrator(f"The function '{name}' doesn't exist, is disabled, or is not an "
                                      "orchestrator function.")
        instance_id = instance_id or uuid.uuid4().hex
        now, execution_id = iso(self.clock()), uuid.uuid4().hex
        with self.store.transaction():
            existing = self.store.instance(instance_id)
            if existing and existing.runtime_status in RUNNING:
                raise InstanceExists(f"An Orchestration instance with the status {existing.runtime_status} "
                                     f"already exists: {instance_id}")
            if existing:
                self.store.delete_instance(instance_id)
            self.store.save_instance(InstanceRow(instance_id, name, execution_id, "Pending", input_text, now, now))
            self.store.enqueue(instance_id, execution_id, execution_started(
                self.clock(), name, input_text, instance_id, execution_id))
        log.event("orchestration.status", instance=instance_id, name=name, status="Pending")
        self._notify()
        return instance_id

    def status(self, instance_id: str, show_history: bool = False, show_input: bool = True) -> dict | None:
        row = self.store.instance(instance_id)
        if row is None:
            return None
        status = _status_json(row, show_input)
        if show_history:
            status["historyEvents"] = self.store.history(instance_id)
        return status

    def query(self, statuses: set[str] | None = None, created_from: datetime | None = None,
              created_to: datetime | None = None, prefix: str | None = None, show_input: bool = False) -> list[dict]:
        rows = self.store.instances(statuses, prefix)
        return [_status_json(row, show_input) for row in rows
                if (created_from is None or parse_iso(row.created_time) >= created_from)
                and (created_to is None or parse_iso(row.created_time) <= created_to)]

    def terminate(self, instance_id: str, reason: str) -> str:
        """`not_found`, `gone` (already ended) or `accepted`."""
        return self._send(instance_id, event(EventType.EXECUTION_TERMINATED, self.clock(), Input=reason,
                                             Name=TERMINATE_REQUEST))

    def raise_event(self, instance_id: str, name: str, input_text: str | None) -> str:
        return self._send(instance_id, event_raised(self.clock(), name, input_text))

    def purge(self, instance_id: str) -> str | int:
        """`not_found`, `not_terminal`, or the number of instances deleted."""
        row = self.store.instance(instance_id)
        if row is None:
            return "not_found"
        if row.runtime_status not in TERMINAL:
            return "not_terminal"
        return self.store.delete_instance(instance_id)

    def purge_by(self, created_from: datetime, created_to: datetime | None, statuses: set[str] | None) -> int:
        rows = self.query(statuses or TERMINAL, created_from, created_to)
        return sum(self.store.delete_instance(row["instanceId"]) for row in rows if row["runtimeStatus"] in TERMINAL)

    def _send(self, instance_id: str, message: dict) -> str:
        with self.store.transaction():
            row = self.store.instance(instance_id)
            if row is None:
                return "not_found"
            if row.runtime_status in TERMINAL:
                return "gone"
            self.store.enqueue(instance_id, row.execution_id, message)
        self._notify()
        return "accepted"

    # results from workers ---------------------------------------------------------------------------
    def deliver(self, instance_id: str, execution_id: str, message: dict) -> None:
        self.store.enqueue(instance_id, execution_id, message)
        self._notify()

    # dispatcher -------------------------------------------------------------------------------------
    def recover(self) -> list[Work]:
        """Work to hand out again after a restart: pending, and with no result waiting in the inbox."""
        work: list[Work] = []
        for row in self.store.instances(RUNNING):
            answered = {item.event.get("TaskScheduledId", item.event.get("TimerId")) for item in self.store.inbox(
                row.instance_id) if item.execution_id == row.execution_id}
            execution = Execution(row.instance_id, row.name, row.execution_id, row.input).restore(row.bookkeeping)
            work.extend(item for item in execution.pending_work() if item.task_id not in answered)
        return work

    def start_dispatcher(self) -> None:
        self._thread = threading.Thread(target=self._run, name="devhost-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread:
            self._thread.join(timeout=30)

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopping:
                    return
                item = self.store.next_event()
                if item is None:
                    self._wake.wait(timeout=1.0)
                    continue
            try:
                self.process(item)
            except Exception as error:  # noqa: BLE001 - one bad event must not stop every orchestration
                log.event("engine.error", instance=item.instance_id, error=f"{type(error).__name__}: {error}")
                self.store.drop_event(item.id)

    def process(self, item: InboxItem) -> None:
        """Apply one inbox event as one episode (or drop it when it is stale)."""
        row = self.store.instance(item.instance_id)
        if row is None or row.execution_id != item.execution_id or row.runtime_status in TERMINAL:
            self.store.drop_event(item.id)
            return
        execution = Execution(row.instance_id, row.name, row.execution_id, row.input,
                              self.store.history(row.instance_id)).restore(row.bookkeeping)
        first_new, now = len(execution.history), self.clock()
        if item.event.get("Name") == TERMINATE_REQUEST:
            outcome = terminate(execution, item.event["Input"], now)
        elif execution.accepts(item.event):
            outcome = run_episode(execution, self.orchestrators.get(row.name, _missing(row.name)), item.event, now)
        else:
            self.store.drop_event(item.id)
            return
        previous = row.runtime_status
        with self.store.transaction():
            self.store.append_history(row.instance_id, first_new, execution.history[first_new:])
            self.store.drop_event(item.id)
            self._apply(row, execution, outcome, now)
        if row.runtime_status != previous:
            _log_status(row, outcome)
        self.on_work(outcome.work)

    def _apply(self, row: InstanceRow, execution: Execution, outcome: Outcome, now: datetime) -> None:
        row.runtime_status, row.last_updated_time = outcome.status, iso(now)
        row.bookkeeping = execution.bookkeeping()
        if outcome.custom_status_set:
            row.custom_status = json.dumps(outcome.custom_status)
        if outcome.status in TERMINAL:
            row.output = json.dumps(outcome.output)
        if outcome.status == "ContinuedAsNew":
            row.execution_id, row.input, row.bookkeeping = uuid.uuid4().hex, outcome.output, dict(EMPTY_BOOKKEEPING)
            self.store.clear_history(row.instance_id)
            self.store.enqueue(row.instance_id, row.execution_id, execution_started(
                now, row.name, row.input, row.instance_id, row.execution_id))
        self.store.save_instance(row)


def _missing(name: str) -> Handle:
    def handle(_context) -> str:
        raise RuntimeError(f"Orchestrator function '{name}' does not exist.")

    return handle


def _status_json(row: InstanceRow, show_input: bool) -> dict:
    status = {"name": row.name, "instanceId": row.instance_id, "runtimeStatus": row.runtime_status,
              "customStatus": json.loads(row.custom_status) if row.custom_status else None,
              "output": json.loads(row.output) if row.output else None,
              "createdTime": status_time(row.created_time), "lastUpdatedTime": status_time(row.last_updated_time)}
    if show_input:
        status["input"] = row.input
    return status


def _log_status(row: InstanceRow, outcome: Outcome) -> None:
    detail = outcome.output if outcome.status in ("Failed", "Terminated") else None
    log.event("orchestration.status", instance=row.instance_id, name=row.name, status=row.runtime_status,
              detail=detail)
