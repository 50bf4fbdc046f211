"""Telemetry with OpenTelemetry: one trace per job, a span per activity, metrics, job ids on log lines.

`configure_telemetry(settings)` (called once by function_app.py) picks the exporter from
`settings.telemetry_exporter`: "none" (the local default: spans and metrics go nowhere, log records
still carry the job id), "console" (spans, metrics and logs printed as JSON on stdout) or
"otlp" (OTLP over HTTP to any collector, e.g. Jaeger, Grafana or an OpenTelemetry Collector, configured by
the standard OTEL_EXPORTER_OTLP_* variables) or "azure_monitor" (Application Insights, from
APPLICATIONINSIGHTS_CONNECTION_STRING with an Entra ID token). The code that emits is the same for all.

One trace per job without passing context through the orchestrator: the trace id is a hash of the
job (orchestration instance) id, and every activity span is started under a remote parent built
from it, so an activity on any instance, at any time, redelivered or not, lands in its job's trace.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

SCOPE = "restyle"
# Payload fields copied onto an activity's span when present (small scalars, never media).
SPAN_FIELDS = ("blob", "attempt", "succeeded", "first", "last", "units_total", "backend")

_job_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("restyle_job_id", default=None)
_activity: contextvars.ContextVar[str | None] = contextvars.ContextVar("restyle_activity", default=None)
_lock = threading.Lock()
_configured = False


def current_job_id() -> str | None:
    return _job_id.get()


# --- log records -------------------------------------------------------------------------------

def install_log_fields() -> None:
    """Every log record made inside a job context gets `job_id` (and `activity`) attributes: the
    OpenTelemetry log handler exports them as fields (customDimensions in Application Insights)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "restyle_job_fields", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        job_id = _job_id.get()
        if job_id is not None:
            record.job_id = job_id
            activity = _activity.get()
            if activity is not None:
                record.activity = activity
        return record

    factory.restyle_job_fields = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


# --- instruments -------------------------------------------------------------------------------

class _Instruments:
    def __init__(self, tracer_provider=None, meter_provider=None) -> None:
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(SCOPE)
        self.duration = meter.create_histogram("restyle.activity.duration", unit="s",
                                               description="activity run time, by activity and outcome")
        self.failures = meter.create_counter("restyle.failures", unit="{failure}",
                                             description="failed activities and rejected uploads, by reason")
        self.bytes = meter.create_counter("restyle.storage.bytes", unit="By",
                                          description="blob bytes moved, by direction and activity")
        self.units_done = meter.create_gauge("restyle.compute.units_done", unit="{unit}",
                                             description="finished units of a compute job (segments or partitions, "
                                                         "by `unit`), as last polled")
        self.segment_fps = meter.create_histogram("restyle.scoring.frames_per_second", unit="{frame}/s",
                                                  description="stylize throughput of each finished segment")
        self.gpu_seconds = meter.create_counter("restyle.scoring.gpu_seconds", unit="s",
                                                description="rank (GPU) seconds spent stylizing a job's segments")
        self.queue_wait = meter.create_histogram("restyle.compute.queue_wait", unit="s",
                                                 description="time a compute attempt waited for a local slot")
        self.model_lookups = meter.create_counter("restyle.forecast.model_lookups", unit="{lookup}",
                                                  description="forecast model cache lookups, by hit (true/false)")
        self.model_load = meter.create_histogram("restyle.forecast.model_load", unit="s",
                                                 description="time to fetch and unpickle a model on a cache miss")
        self.cache_bytes = meter.create_gauge("restyle.forecast.cache_bytes", unit="By",
                                              description="bytes of models held by this worker's forecast cache")


_instruments = _Instruments()


def use_providers(tracer_provider=None, meter_provider=None) -> None:
    """Emit to these providers instead of the global ones (tests: in-memory exporter and reader)."""
    global _instruments
    _instruments = _Instruments(tracer_provider, meter_provider)


def configure_telemetry(settings) -> None:
    """Install the exporter `settings.telemetry_exporter` names; once per process (later calls do nothing)."""
    global _configured
    with _lock:
        if _configured:
            return
        _configured = True
    install_log_fields()
    exporter = settings.telemetry_exporter
    if exporter == "none":
        return
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create({"service.name": SCOPE})
    if exporter == "azure_monitor":
        from azure.identity import DefaultAzureCredential
        from azure.monitor.opentelemetry import configure_azure_monitor

        # The connection string comes from APPLICATIONINSIGHTS_CONNECTION_STRING; the component has
        # local auth off, so the exporter authenticates as the app's identity (AZURE_CLIENT_ID).
        configure_azure_monitor(credential=DefaultAzureCredential(), resource=resource)
    elif exporter == "console":
        _configure_exporters(resource, *_console_exporters())
    elif exporter == "otlp":
        _configure_exporters(resource, *_otlp_exporters())
    else:
        raise ValueError(f"unknown telemetry exporter {exporter!r}")
    use_providers()  # re-read the (now real) global providers


def _console_exporters() -> tuple:
    from opentelemetry.sdk._logs.export import ConsoleLogExporter
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter(), ConsoleMetricExporter(), ConsoleLogExporter()


def _otlp_exporters() -> tuple:
    """OTLP/HTTP (protobuf); endpoint, headers and timeouts from the standard OTEL_EXPORTER_OTLP_*
    variables (default http://localhost:4318), so pointing at another collector needs no code."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(), OTLPMetricExporter(), OTLPLogExporter()


def _configure_exporters(resource, span_exporter, metric_exporter, log_exporter) -> None:
    """Global tracer, meter and logger providers over these exporters, and a root-logger handler."""
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[
        PeriodicExportingMetricReader(metric_exporter, export_interval_millis=30_000)]))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))


# --- one trace per job -------------------------------------------------------------------------

def job_trace_id(job_id: str) -> int:
    return int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:16], "big") or 1


def job_context(job_id: str) -> otel_context.Context:
    """A context whose (remote, never exported) parent span puts children in the job's trace."""
    digest = hashlib.sha256(job_id.encode()).digest()
    parent = SpanContext(job_trace_id(job_id), int.from_bytes(digest[16:24], "big") or 1, is_remote=True,
                         trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(parent))


def failure_reason(error: BaseException) -> str:
    """A bounded label for a failure: the exception's class, never its message."""
    return type(error).__name__


class Run:
    """One activity run, as its scope reports it: `outcome` may be changed inside (e.g. "rejected")."""

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self.outcome = "succeeded"


@contextmanager
def activity_scope(name: str, payload: Any) -> Iterator[Run]:
    """The span, job id on log records, duration and failure metrics of one activity run."""
    install_log_fields()
    fields = payload if isinstance(payload, dict) else {}
    job_id = fields.get("job_id")
    attributes = {"activity": name, **({"job_id": job_id} if job_id else {}),
                  **{key: fields[key] for key in SPAN_FIELDS if isinstance(fields.get(key), (bool, int, str))}}
    tokens = (_job_id.set(job_id), _activity.set(name))
    started = time.perf_counter()
    outcome = "failed"  # until the body returns
    try:
        with _instruments.tracer.start_as_current_span(
                name, context=job_context(job_id) if job_id else None, kind=SpanKind.CONSUMER,
                attributes=attributes, set_status_on_exception=False) as span:
            run = Run(span)
            try:
                yield run
            except Exception as error:
                reason = failure_reason(error)
                span.set_status(Status(StatusCode.ERROR, f"{reason}: {error}"))
                span.set_attributes({"outcome": outcome, "failure_reason": reason})
                _instruments.failures.add(1, {"activity": name, "reason": reason})
                raise
            outcome = run.outcome
            span.set_attribute("outcome", outcome)
    finally:
        _instruments.duration.record(time.perf_counter() - started, {"activity": name, "outcome": outcome})
        _activity.reset(tokens[1])
        _job_id.reset(tokens[0])


def job_activity(on_result: Callable[[Any, Any], None] | None = None):
    """Decorator for an activity adapter: `activity_scope` around it (named after the function), and
    `on_result(payload, result)` inside the scope for activity-specific metrics."""

    def wrap(function):
        @functools.wraps(function)
        def run(*args, **kwargs):  # the worker passes the input by its binding name (payload=, handle=)
            payload = args[0] if args else next(iter(kwargs.values()), None)
            with activity_scope(function.__name__, payload) as scope:
                result = function(*args, **kwargs)
                if isinstance(result, dict) and result.get("accepted") is False:  # a rejected upload
                    scope.outcome = "rejected"
                    scope.span.set_attribute("failure_reason", "rejected")
                    _instruments.failures.add(1, {"activity": function.__name__, "reason": "rejected"})
                if on_result is not None:
                    on_result(payload, result)
                return result

        return run

    return wrap


# --- audit trail -------------------------------------------------------------------------------

AUDIT = logging.getLogger("restyle.audit")
AUDIT.setLevel(logging.INFO)  # always recorded, whatever the root logger's level
CUSTOM_EVENT_NAME = "microsoft.custom_event.name"  # Azure Monitor's exporter sends such a record as a customEvent


def record_audit(action: str, user_id: str, job_id: str, **details: str) -> None:
    """Who did what to which job (job_started, job_canceled, job_downloaded): a log record that Azure
    Monitor files as the custom event `restyle.<action>` (other exporters as a log with the same
    fields), with the user in OpenTelemetry's `enduser.id` and the job id as on every job log line; and
    a span in the job's trace, so the trace shows who started or canceled it."""
    install_log_fields()
    fields = {"enduser.id": user_id, "audit.action": action,
              **{f"audit.{key}": value for key, value in details.items()}}
    token = _job_id.set(job_id)
    try:
        AUDIT.info("%s: job %s by %s", action, job_id, user_id,
                   extra={CUSTOM_EVENT_NAME: f"restyle.{action}", **fields})
    finally:
        _job_id.reset(token)
    span = _instruments.tracer.start_span(f"audit.{action}", context=job_context(job_id), kind=SpanKind.INTERNAL,
                                          attributes={"job_id": job_id, **fields})
    span.end()


# --- activity-specific metrics -----------------------------------------------------------------

def record_bytes(down: int = 0, up: int = 0) -> None:
    """Called by the blob store for every transfer; attributed to the activity running it."""
    attributes = {"activity": _activity.get() or "other"}
    if down:
        _instruments.bytes.add(down, {**attributes, "direction": "down"})
    if up:
        _instruments.bytes.add(up, {**attributes, "direction": "up"})


def record_compute_status(job_id: str, status: dict) -> None:
    _instruments.units_done.set(status["units_done"], {"job_id": job_id, "unit": status.get("unit", "segment")})


def record_attempt(handle: dict, status: dict) -> None:
    """One span per compute attempt (a scoring job or a training run), from its submission to the
    poll (or cancel) that saw it end, in the job's trace: the GPU work itself, beside the short
    activity spans that submit and poll it."""
    job_id = handle["job_id"]
    ended = time.time_ns()
    started = int(handle["submitted_at"] * 1e9) if handle.get("submitted_at") else ended
    state = str(status["state"])
    attributes = {"job_id": job_id, "attempt": handle.get("attempt", 0), "backend": handle.get("backend", ""),
                  "kind": handle.get("kind", "stylize"), "state": state, "unit": status.get("unit", "segment"),
                  "units_total": status.get("units_total") or 0,
                  **({"units_done": status["units_done"]} if status.get("units_done") is not None else {}),
                  **({"aml_job": handle["name"]} if handle.get("name") else {})}
    span = _instruments.tracer.start_span("compute_attempt", context=job_context(job_id), kind=SpanKind.INTERNAL,
                                          attributes=attributes, start_time=min(started, ended))
    if state in ("failed", "preempted"):
        span.set_status(Status(StatusCode.ERROR, status.get("message") or state))
    span.end(end_time=ended)


def record_scoring_results(job_id: str, results: list[dict]) -> None:
    """Per finished segment (the scoring job's result JSONs): frames/s and the rank seconds it took."""
    for result in results:
        if result.get("fps"):
            _instruments.segment_fps.record(result["fps"], {"job_id": job_id})
        if result.get("seconds"):
            _instruments.gpu_seconds.add(result["seconds"], {"job_id": job_id, "device": result.get("device", "")})


def record_queue_wait(seconds: float, job_id: str, backend: str) -> None:
    _instruments.queue_wait.record(max(seconds, 0.0), {"job_id": job_id, "backend": backend})


def record_model_lookup(hit: bool) -> None:
    _instruments.model_lookups.add(1, {"hit": hit})


def record_forecast_cache(cache, load_seconds: float) -> None:
    """After a model load: its time, and the cache's size (which the load may have changed)."""
    _instruments.model_load.record(load_seconds)
    _instruments.cache_bytes.set(cache.bytes)
