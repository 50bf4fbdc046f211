"""Activity input and output as the Python worker converts them (the activity trigger converter).

The input is the action's JSON text, handed to the converter unchanged (it decodes JSON and falls
back to the raw string); the output is the converter's encoded JSON text, stored as the
TaskCompleted result. A failure reads as the extension reports it to the orchestrator.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from datetime import datetime

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from . import log
from .catalog import Function
from .episode import RunActivity
from .history import task_completed, task_failed
from .invoker import Invoker


def decode_input(input_text: str | None) -> object:
    if input_text is None:
        return None
    return ActivityTriggerConverter.decode(meta.Datum(input_text, "string"), trigger_metadata=None)


def encode_output(value: object) -> str:
    return ActivityTriggerConverter.encode(value, expected_type=None).value


def failure(name: str, error: BaseException) -> tuple[str, str]:
    """(Reason, Details) of a TaskFailed event, worded as the Durable extension words them."""
    reason = f"Activity function '{name}' failed: {type(error).__name__}: {error}"
    details = "".join(traceback.format_exception(error))
    return reason, details


def run_activity(function: Function | None, invoker: Invoker, work: RunActivity, at: Callable[[], datetime]) -> dict:
    """Run one scheduled activity and return its TaskCompleted or TaskFailed event; logs begin and end."""
    where = {"instance": work.instance_id, "execution": work.execution_id, "name": work.name, "task": work.task_id,
             "attempt": work.attempt}
    log.event("activity.begin", **where)
    started = time.monotonic()
    try:
        if function is None:
            raise LookupError(f"Activity function '{work.name}' does not exist.")
        result = invoker.call(function.fn, {function.trigger_param: decode_input(work.input)})
        completed = task_completed(at(), work.task_id, encode_output(result))
    except Exception as error:  # noqa: BLE001 - an activity's failure is a result the orchestrator sees
        completed = task_failed(at(), work.task_id, *failure(work.name, error))
        outcome = completed["Reason"]
    else:
        outcome = "ok"
    log.event("activity.end", **where, outcome=outcome, seconds=round(time.monotonic() - started, 3))
    return completed
