"""devhost is no kinder than Azure: functionTimeout fails an activity at the timeout (and the retry
policy applies), a scratch cap fails an activity that writes past it with ENOSPC, and the scratch
meter's peak is exact. A small app of its own, in process; no storage needed, each test ~1 s.
"""

from __future__ import annotations

import errno
import json
import os
import time
import urllib.request

import azure.durable_functions as df
import pytest

from devhost.__main__ import parse_options
from devhost.config import ConfigError, HostConfig
from devhost.history import EventType
from devhost.host import Host, Options
from devhost.scratch import MB, ScratchMeter, bytes_under, metered
from devhost.timespan import format_timespan, parse_timespan
from restyle.settings import Settings
from restyle.tempfiles import scratch_dir

TIMEOUT = "00:00:00.6"  # host.json functionTimeout of the test app
SLOW_SECONDS = 1.5  # the first attempt of `slow_once` sleeps this long: past the timeout
CAP_MB = 1
app = df.DFApp()
calls: dict[str, int] = {}  # attempts of slow_once per key


@app.orchestration_trigger(context_name="context")
def retried(context: df.DurableOrchestrationContext):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=3)
    return (yield context.call_activity_with_retry("slow_once", options, context.get_input()))


@app.orchestration_trigger(context_name="context")
def once(context: df.DurableOrchestrationContext):
    job = context.get_input()
    return (yield context.call_activity(job["activity"], job["mb"]))


@app.activity_trigger(input_name="key")
def slow_once(key: str) -> str:
    calls[key] = attempt = calls.get(key, 0) + 1
    if attempt == 1:
        time.sleep(SLOW_SECONDS)
        return f"late attempt {attempt}"
    return f"attempt {attempt}"


@app.activity_trigger(input_name="mb")
def fill_scratch(mb: int) -> int:
    """Writes `mb` MiB into one scratch file and keeps it a moment: more than the cap at once."""
    with scratch_dir(Settings().temp_root) as folder, (folder / "big.bin").open("wb") as out:
        for _ in range(mb * 8):
            out.write(b"\0" * (MB // 8))
            out.flush()
            time.sleep(0.005)
        time.sleep(0.25)
    return mb


@app.activity_trigger(input_name="mb")
def stream_segments(mb: int) -> int:
    """Moves `mb` MiB through scratch half a MiB at a time, as a streamed media path does."""
    with scratch_dir(Settings().temp_root) as folder:
        for index in range(mb * 2):
            segment = folder / f"segment_{index}.bin"
            segment.write_bytes(b"\0" * (MB // 2))
            time.sleep(0.06)  # the meter samples every 50 ms: it sees every segment
            segment.unlink()
    return mb


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    (folder / "host.json").write_text(json.dumps({"version": "2.0", "functionTimeout": TIMEOUT}))
    scratch = tmp_path_factory.mktemp("scratch")
    saved = {name: os.environ.get(name) for name in ("RESTYLE_TEMP_ROOT", "RESTYLE_SCRATCH_LIMIT_MB")}
    os.environ.update({"RESTYLE_TEMP_ROOT": str(scratch), "RESTYLE_SCRATCH_LIMIT_MB": str(CAP_MB)})
    running = Host(Options(app=__name__, folder=folder, port=0, state_dir=tmp_path_factory.mktemp("state"),
                           activity_workers=2, drain_seconds=5))
    running.start()
    yield running
    running.stop()
    for name, value in saved.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def run_to_end(host: Host, name: str, payload: object) -> dict:
    instance_id = host.engine.start(name, None, json.dumps(payload))
    return wait_for(lambda: (s := host.engine.status(instance_id, show_history=True))["runtimeStatus"]
                    in ("Completed", "Failed") and s, what=f"{name} to end")


def no_abandoned_threads(host: Host) -> None:
    wait_for(lambda: host.activities.status()["abandoned"] == 0, what="abandoned activity threads to return")


def of_type(status: dict, kind: EventType) -> list[dict]:
    return [event for event in status["historyEvents"] if event["EventType"] == kind]


def test_an_activity_past_function_timeout_fails_at_the_timeout_and_the_retry_policy_runs_it_again(host):
    started = time.monotonic()
    status = run_to_end(host, "retried", "timeout-case")
    assert time.monotonic() - started < SLOW_SECONDS  # failed at the timeout, not when the thread returned
    assert status["runtimeStatus"] == "Completed" and status["output"] == "attempt 2"
    [failed] = of_type(status, EventType.TASK_FAILED)
    assert failed["Reason"] == ("Activity function 'slow_once' failed: Timeout value of 00:00:00.6000000 was "
                                "exceeded by function: Functions.slow_once")
    history = status["historyEvents"]

    no_abandoned_threads(host)  # the abandoned first attempt has returned "late attempt 1" by now
    assert calls["timeout-case"] == 2
    after = host.engine.status(status["instanceId"], show_history=True)
    assert after["historyEvents"] == history and after["output"] == "attempt 2"
    assert len(of_type(after, EventType.TASK_COMPLETED)) == 1
    assert host.store.inbox(status["instanceId"]) == []


def test_an_activity_writing_past_the_scratch_cap_fails_with_enospc(host):
    status = run_to_end(host, "once", {"activity": "fill_scratch", "mb": 3})
    assert status["runtimeStatus"] == "Failed"
    [failed] = of_type(status, EventType.TASK_FAILED)
    assert failed["Reason"].startswith("Activity function 'fill_scratch' failed: OSError: [Errno 28] No space left "
                                       f"on device: scratch cap of {CAP_MB} MB exceeded (")
    no_abandoned_threads(host)
    assert not of_type(host.engine.status(status["instanceId"], show_history=True), EventType.TASK_COMPLETED)


def test_a_source_larger_than_the_cap_passes_when_scratch_holds_one_segment_at_a_time(host):
    no_abandoned_threads(host)
    host.meter.reset_peak()
    status = run_to_end(host, "once", {"activity": "stream_segments", "mb": 3})
    assert status["runtimeStatus"] == "Completed" and status["output"] == 3
    with urllib.request.urlopen(f"{host.url}/admin/host/status", timeout=10) as response:
        scratch = json.loads(response.read())["scratch"]
    assert scratch["limit_mb"] == CAP_MB and scratch["peak_mb"] == 0.5  # one segment, never the 3 MiB


def test_the_meter_peak_is_the_bytes_written_and_a_passed_cap_reads_as_enospc(tmp_path):
    errors: list[OSError] = []
    meter = ScratchMeter(tmp_path / "scratch", limit_bytes=4 * MB, on_exceeded=errors.append)
    assert meter.sample() == 0  # no folder yet: nothing in use
    (tmp_path / "scratch" / "job" / "deep").mkdir(parents=True)
    (tmp_path / "scratch" / "job" / "a.bin").write_bytes(b"\0" * (3 * MB))
    (tmp_path / "scratch" / "job" / "deep" / "b.bin").write_bytes(b"\0" * 12345)
    assert meter.sample() == 3 * MB + 12345 and not errors
    (tmp_path / "scratch" / "job" / "a.bin").unlink()
    (tmp_path / "scratch" / "job" / "c.bin").write_bytes(b"\0" * (5 * MB))
    meter.sample()
    assert meter.peak_bytes == 5 * MB + 12345 and meter.status()["peak_mb"] == round((5 * MB + 12345) / MB, 3)
    [error] = errors
    assert error.errno == errno.ENOSPC
    assert str(error) == "[Errno 28] No space left on device: scratch cap of 4 MB exceeded (5.0 MB in use)"


def test_bytes_under_skips_what_vanishes_and_does_not_follow_links(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"\0" * 1000)
    (tmp_path / "link").symlink_to(tmp_path / "data.bin")
    assert bytes_under(tmp_path) == 1000
    assert bytes_under(tmp_path / "missing") == 0


def test_function_timeout_is_read_from_host_json_and_can_be_overridden(tmp_path, monkeypatch):
    assert HostConfig.load(tmp_path).function_timeout == 1800  # unset: the Flex Consumption default
    (tmp_path / "host.json").write_text(json.dumps({"functionTimeout": "01:00:00"}))
    assert HostConfig.load(tmp_path).function_timeout == 3600
    (tmp_path / "host.json").write_text(json.dumps({"functionTimeout": "-1"}))
    assert HostConfig.load(tmp_path).function_timeout is None
    (tmp_path / "host.json").write_text(json.dumps({"functionTimeout": "soon"}))
    with pytest.raises(ConfigError, match="functionTimeout"):
        HostConfig.load(tmp_path)
    monkeypatch.setenv("DEVHOST_FUNCTION_TIMEOUT", "2.5")
    assert parse_options([]).function_timeout == "2.5"
    assert parse_options(["--function-timeout", "00:00:05"]).function_timeout == "00:00:05"


def test_timespans_read_and_print_as_the_host_does():
    assert parse_timespan("00:30:00") == 1800 and parse_timespan("1.02:00:00") == 93600
    assert parse_timespan("00:00:00.25") == 0.25 and parse_timespan(90) == 90 and parse_timespan("-1") is None
    assert format_timespan(1800) == "00:30:00" and format_timespan(0.5) == "00:00:00.5000000"
    assert format_timespan(93600) == "1.02:00:00"
    with pytest.raises(ValueError):
        parse_timespan("0")



def test_a_bench_script_meters_a_block_in_process(tmp_path):
    with metered(tmp_path, interval=0.01) as meter:
        (tmp_path / "out.bin").write_bytes(b"\0" * (2 * MB))
        wait_for(lambda: meter.peak_bytes == 2 * MB, timeout=5, what="the sampler to see the file")
        (tmp_path / "out.bin").unlink()
    assert meter.peak_bytes == 2 * MB and meter.last_bytes == 0
