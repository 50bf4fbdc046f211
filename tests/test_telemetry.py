"""What the activity adapters emit (restyle/telemetry.py), read back from OpenTelemetry's in-memory
exporter and metric reader: the spans of a job share its trace, failures are counted by reason,
log records carry the job id, and duration, bytes and scoring metrics exist. Real Azurite."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from activities import blueprint
from activities.compute.backend import JobState, JobStatus
from activities.work_layout import WorkLayout
from restyle import telemetry


@pytest.fixture
def emitted():
    """(span exporter, metric reader) the telemetry module emits to during the test."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry.use_providers(tracer_provider, MeterProvider(metric_readers=[reader]))
    yield spans, reader
    telemetry.use_providers()


@pytest.fixture
def app_store(store, monkeypatch):
    monkeypatch.setattr(blueprint, "app_store", lambda: store)
    return store


def points(reader: InMemoryMetricReader, name: str) -> list:
    data = reader.get_metrics_data()
    return [point for resource in (data.resource_metrics if data else []) for scope in resource.scope_metrics
            for metric in scope.metrics if metric.name == name for point in metric.data.data_points]


def test_spans_of_a_job_share_its_trace_and_failures_count_by_reason(emitted, app_store, make_clip) -> None:
    spans, reader = emitted
    store = app_store
    store.upload_file(store.settings.input_container, "clip.mp4", make_clip(frames=12))
    store.write_json(store.settings.work_container, WorkLayout("job-b").inside("note.json"), {"x": 1})

    blueprint.probe({"blob": "clip.mp4", "job_id": "job-a"})
    with pytest.raises(Exception) as failure:  # no plan was written: the manifest cannot be made
        blueprint.write_manifest({"job_id": "job-a", "video": {"frame_count": 12, "fps": 24}, "style": "19",
                                  "options": {}, "split_frames": 12})
    blueprint.cleanup({"job_id": "job-a", "succeeded": False})
    assert blueprint.cleanup({"job_id": "job-b", "succeeded": True}) == {"removed": 1, "kept": False}

    finished = spans.get_finished_spans()
    assert [span.name for span in finished] == ["probe", "write_manifest", "cleanup", "cleanup"]
    job_a, job_b = finished[:3], finished[3:]
    assert {span.context.trace_id for span in job_a} == {telemetry.job_trace_id("job-a")}
    assert job_b[0].context.trace_id == telemetry.job_trace_id("job-b") != telemetry.job_trace_id("job-a")
    assert [span.attributes["job_id"] for span in finished] == ["job-a"] * 3 + ["job-b"]
    assert job_a[2].attributes["succeeded"] is False and job_b[0].attributes["succeeded"] is True
    assert [span.status.status_code for span in finished] == [StatusCode.UNSET, StatusCode.ERROR,
                                                               StatusCode.UNSET, StatusCode.UNSET]
    reason = type(failure.value).__name__
    assert job_a[1].attributes["failure_reason"] == reason
    assert (job_a[0].attributes["outcome"], job_a[0].attributes["blob"]) == ("succeeded", "clip.mp4")

    failures = {(dict(p.attributes)["activity"], dict(p.attributes)["reason"]): p.value
                for p in points(reader, "restyle.failures")}
    assert failures == {("write_manifest", reason): 1}
    durations = {(dict(p.attributes)["activity"], dict(p.attributes)["outcome"]): p.count
                 for p in points(reader, "restyle.activity.duration")}
    assert durations == {("probe", "succeeded"): 1, ("write_manifest", "failed"): 1, ("cleanup", "succeeded"): 2}
    moved = {(dict(p.attributes)["activity"], dict(p.attributes)["direction"]): p.value
             for p in points(reader, "restyle.storage.bytes")}
    assert moved[("probe", "down")] > 0  # probe read the upload's index
    assert moved[("other", "up")] > 0  # the test's own upload, outside any activity


def test_a_rejected_upload_counts_as_a_failure(emitted, app_store, tmp_path) -> None:
    spans, reader = emitted
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    app_store.upload_file(app_store.settings.input_container, "junk.mp4", junk)
    assert blueprint.probe({"blob": "junk.mp4", "job_id": "job-r"})["accepted"] is False
    assert spans.get_finished_spans()[0].attributes["outcome"] == "rejected"
    assert [(dict(p.attributes)["reason"], p.value) for p in points(reader, "restyle.failures")] == [("rejected", 1)]


def test_log_records_inside_an_activity_carry_its_job_id(emitted, caplog) -> None:
    @telemetry.job_activity()
    def noisy(handle: dict) -> dict:
        logging.getLogger("restyle.test").info("working")
        return {}

    caplog.set_level(logging.INFO, logger="restyle.test")
    noisy(handle={"job_id": "job-log"})  # called by binding name, as the worker does
    logging.getLogger("restyle.test").info("outside")
    inside, outside = caplog.records
    assert (inside.job_id, inside.activity) == ("job-log", "noisy")
    assert not hasattr(outside, "job_id")


def test_an_audit_event_names_the_user_and_the_job_as_a_custom_event_and_in_the_jobs_trace(emitted) -> None:
    """What Application Insights gets: the log record's attributes (the custom event's name, the user in
    `enduser.id`, the job id) through OpenTelemetry's own log handler, and a span in the job's trace."""
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    spans, _ = emitted
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    logging.getLogger().addHandler(handler)  # where configure_telemetry puts it; the root stays at WARNING
    try:
        telemetry.record_audit("job_canceled", "olga-id", "job-x", owner="alice-id", blob="clip.mp4")
    finally:
        logging.getLogger().removeHandler(handler)
    [record] = exporter.get_finished_logs()
    attributes = dict(record.log_record.attributes)
    assert {key: attributes[key] for key in ("microsoft.custom_event.name", "enduser.id", "job_id", "audit.action",
                                             "audit.owner", "audit.blob")} == {
        "microsoft.custom_event.name": "restyle.job_canceled", "enduser.id": "olga-id", "job_id": "job-x",
        "audit.action": "job_canceled", "audit.owner": "alice-id", "audit.blob": "clip.mp4"}
    assert record.log_record.body == "job_canceled: job job-x by olga-id"
    [span] = spans.get_finished_spans()
    assert (span.name, span.context.trace_id) == ("audit.job_canceled", telemetry.job_trace_id("job-x"))
    assert (span.attributes["enduser.id"], span.attributes["job_id"]) == ("olga-id", "job-x")


def test_compute_status_records_progress_and_throughput(emitted, app_store, monkeypatch) -> None:
    spans, reader = emitted
    layout = WorkLayout("job-s")
    for index, (frames, seconds) in enumerate([(48, 2.0), (24, 4.0)]):
        app_store.write_json(app_store.settings.work_container, f"{layout.styled_prefix}seg{index}.json",
                             {"segment": index, "frames": frames, "seconds": seconds, "fps": frames / seconds,
                              "device": "cuda:0"})

    class Finished:
        def status(self, handle: dict) -> JobStatus:
            return JobStatus(JobState.COMPLETED, 2, 2, "done")

    monkeypatch.setattr(blueprint, "backend_for", lambda store: Finished())
    handle = {"backend": "local", "job_id": "job-s", "attempt": 2, "units_total": 2, "submitted_at": 1.0e9}
    blueprint.compute_status(handle=handle)
    blueprint.compute_status(handle=handle)  # the final poll, redelivered after a host restart

    attempt, poll, _ = spans.get_finished_spans()  # the attempt span ends inside the poll that saw it end
    assert (poll.name, poll.attributes["attempt"]) == ("compute_status", 2)
    assert attempt.name == "compute_attempt" and attempt.context.trace_id == telemetry.job_trace_id("job-s")
    assert (attempt.start_time, attempt.status.status_code) == (1_000_000_000 * 10**9, StatusCode.UNSET)
    assert {key: attempt.attributes[key] for key in ("attempt", "backend", "state", "units_done", "units_total",
                                                     "unit", "kind")} == {
        "attempt": 2, "backend": "local", "state": "completed", "units_done": 2, "units_total": 2, "unit": "segment",
        "kind": "stylize"}
    assert [(dict(p.attributes), p.value) for p in points(reader, "restyle.compute.units_done")] == [
        ({"job_id": "job-s", "unit": "segment"}, 2)]
    fps = points(reader, "restyle.scoring.frames_per_second")
    assert [(p.count, p.sum) for p in fps] == [(2, 24 + 6)]  # once, not once per delivery
    assert [p.value for p in points(reader, "restyle.scoring.gpu_seconds")] == [6.0]


def test_each_attempt_gets_one_span_failed_or_canceled(emitted, app_store, monkeypatch) -> None:
    spans, _ = emitted
    canceled = []

    class Failing:
        def status(self, handle: dict) -> JobStatus:
            return JobStatus(JobState.PREEMPTED, 1, 3, "the cluster node was pre-empted")

        def cancel(self, handle: dict) -> None:
            canceled.append(handle["attempt"])

    monkeypatch.setattr(blueprint, "backend_for", lambda store: Failing())
    first = {"backend": "azureml", "name": "restyle-job-p-a1", "job_id": "job-p", "attempt": 1, "units_total": 3,
             "submitted_at": 1.0e9}
    blueprint.compute_status(handle=first)
    blueprint.cancel_compute(handle=first)  # already ended: canceling it adds no second attempt span
    second = {**first, "name": "restyle-job-p-a2", "attempt": 2}
    blueprint.cancel_compute(handle=second)
    attempts = [span for span in spans.get_finished_spans() if span.name == "compute_attempt"]
    assert [(span.attributes["attempt"], span.attributes["state"], span.status.status_code) for span in attempts] == [
        (1, "preempted", StatusCode.ERROR), (2, "canceled", StatusCode.UNSET)]
    assert attempts[0].status.description == "the cluster node was pre-empted"
    assert attempts[0].attributes["aml_job"] == "restyle-job-p-a1" and canceled == [1, 2]


def test_otlp_exporter_sends_spans_metrics_and_logs_to_a_collector() -> None:
    """RESTYLE_TELEMETRY_EXPORTER=otlp in a fresh process, a real OTLP/HTTP receiver on loopback."""
    import os
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    kinds = {"/v1/traces": ExportTraceServiceRequest, "/v1/metrics": ExportMetricsServiceRequest,
             "/v1/logs": ExportLogsServiceRequest}
    received: dict[str, list] = {path: [] for path in kinds}

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received[self.path].append(kinds[self.path].FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = (
        "import logging\n"
        "from restyle.settings import Settings\n"
        "from restyle import telemetry\n"
        "telemetry.configure_telemetry(Settings())\n"
        "@telemetry.job_activity()\n"
        "def probe(payload):\n"
        "    logging.getLogger('restyle.test').warning('probing')\n"
        "    return {}\n"
        "probe({'job_id': 'job-otlp', 'blob': 'a.mp4'})\n")
    env = {**os.environ, "RESTYLE_TELEMETRY_EXPORTER": "otlp",
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}"}
    try:  # the SDK's providers flush at exit
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    finally:
        server.shutdown()

    spans = [span for request in received["/v1/traces"] for rs in request.resource_spans
             for ss in rs.scope_spans for span in ss.spans]
    assert [span.name for span in spans] == ["probe"]
    assert int.from_bytes(spans[0].trace_id, "big") == telemetry.job_trace_id("job-otlp")
    assert {a.key: a.value.string_value for a in spans[0].attributes}["blob"] == "a.mp4"
    logs = [record for request in received["/v1/logs"] for rl in request.resource_logs
            for sl in rl.scope_logs for record in sl.log_records]
    assert [({a.key: a.value.string_value for a in r.attributes}.get("job_id"), r.body.string_value)
            for r in logs] == [("job-otlp", "probing")]
    assert logs[0].trace_id == spans[0].trace_id
    metric_names = {metric.name for request in received["/v1/metrics"] for rm in request.resource_metrics
                    for sm in rm.scope_metrics for metric in sm.metrics}
    assert "restyle.activity.duration" in metric_names


def test_queue_wait_of_a_local_job(emitted, settings) -> None:
    from activities.compute.local import LocalBackend
    from restyle.storage import BlobStore

    _, reader = emitted
    backend = LocalBackend(BlobStore.from_settings(settings))
    backend._launch = lambda state, job_id, kind, events_url: None  # the wait is measured, not the run
    backend.submit("job-q", 1, 1)
    assert [dict(p.attributes) for p in points(reader, "restyle.compute.queue_wait")] == [
        {"job_id": "job-q", "backend": "local"}]


def test_every_log_line_of_a_scoring_rank_names_its_job(tmp_path) -> None:
    """scoring_job cannot import restyle: its ranks put job_id and rank on each line themselves."""
    import json
    import subprocess
    import sys

    from scoring_job.manifest import Manifest, Segment

    input_dir, output_dir = tmp_path / "in", tmp_path / "out"
    segment = Segment(index=0, path="segments/000.mp4", frames=5)
    Manifest(job_id="job-rank", fps="24/1", style="19", segments=[segment]).save(input_dir)
    output_dir.mkdir()  # the one segment is done already: the rank logs and exits without a model
    (output_dir / f"{segment.name}.mp4").write_bytes(b"styled")
    (output_dir / f"{segment.name}.json").write_text(json.dumps({"frames": 5}))
    run = subprocess.run([sys.executable, "-m", "scoring_job.score", "--input", str(input_dir),
                          "--output", str(output_dir)], capture_output=True, text=True, check=True)
    lines = run.stderr.splitlines()
    assert lines and all(" job_id=job-rank rank=0 " in line for line in lines), lines


def test_the_workbook_reads_metrics_and_span_fields_the_app_emits() -> None:
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    workbook = (root / "infra" / "app" / "workbook.bicep").read_text(encoding="utf-8")
    code = (root / "restyle" / "telemetry.py").read_text(encoding="utf-8")
    metrics_read = set(re.findall(r'name == "(restyle\.[\w.]+)"', workbook))
    assert metrics_read == {"restyle.scoring.frames_per_second", "restyle.activity.duration",
                            "restyle.scoring.gpu_seconds", "restyle.storage.bytes"}
    assert all(f'"{name}"' in code for name in metrics_read)
    fields_read = set(re.findall(r"customDimensions\.(\w+)", workbook))
    assert fields_read <= {"job_id", "activity", "outcome", "failure_reason", "succeeded", "blob", "direction"}
    assert {"blob", "succeeded"} <= set(telemetry.SPAN_FIELDS)
