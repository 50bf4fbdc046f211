"""Activity input and output as the Python worker converts them (the activity trigger converter).

The input is the action's JSON text, handed to the converter unchanged (it decodes JSON and falls
back to the raw string); the output is the converter's encoded JSON text, stored as the
TaskCompleted result. A failure reads as the extension reports it to the orchestrator.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import datetime

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from .catalog import Function
from .episode import RunActivity
from .history import task_completed, task_failed
from .invoker import Invoker
from .timespan import format_timespan


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


def timeout_failure(name: str, function_name: str, seconds: float) -> tuple[str, str]:
    """(Reason, Details) for an activity past functionTimeout, in the host's words.

    The host throws FunctionTimeoutException("Timeout value of <TimeSpan> was exceeded by function:
    Functions.<name>") (azure-webjobs-sdk FunctionExecutor.TryHandleTimeoutAsync), and the Durable
    extension reports it as it reports a user error (TaskActivityShim: FunctionTimeoutError).
    """
    message = f"Timeout value of {format_timespan(seconds)} was exceeded by function: Functions.{function_name}"
    return (f"Activity function '{name}' failed: {message}",
            f"Microsoft.Azure.WebJobs.Host.FunctionTimeoutException: {message}")


def invoke_activity(function: Function | None, invoker: Invoker, work: RunActivity, at: Callable[[], datetime]) -> dict:
    """Run one scheduled activity to its end; its TaskCompleted or TaskFailed event."""
    try:
        if function is None:
            raise LookupError(f"Activity function '{work.name}' does not exist.")
        result = invoker.call(function.fn, {function.trigger_param: decode_input(work.input)})
        return task_completed(at(), work.task_id, encode_output(result))
    except Exception as error:  # noqa: BLE001 - an activity's failure is a result the orchestrator sees
        return task_failed(at(), work.task_id, *failure(work.name, error))
