"""End-to-end support shared by the devhost e2e tests, the fault tests and bench/faults.py.

The real app runs as a devhost child on a real Azurite with the local scoring backend, as a user
runs it; these helpers upload, poll `GET /api/jobs/{id}` and read devhost's log lines. Azurite runs
here as a process of our own on a fixed port and data folder, so a test can stop it and start it
again where it was (an outage), which the session-wide fixture in conftest.py cannot.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from azure.storage.blob import BlobServiceClient

from devhost.process import DevhostProcess
from scoring_job.ffmpeg_binary import ffmpeg_binary
from tools.azurite import Azurite, free_port

ENDED = ("Completed", "Failed", "Terminated")
FAST = {"compile": "false"}  # blob metadata, read by the trigger as scoring options
CONTAINER_KINDS = ("input", "styles", "work", "output", "rejected", "tables")
T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.25) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def upload(world: dict, name: str, data: bytes, metadata: dict[str, str]) -> None:
    world["service"].get_blob_client(world["containers"]["input"], name).upload_blob(data, overwrite=True,
                                                                                     metadata=metadata)


def jobs_for(host: DevhostProcess, blob: str) -> list[dict]:
    return [job for job in host.request("GET", "/api/jobs")[1]["jobs"] if job["blob"] == blob]


def ended(host: DevhostProcess, job_id: str) -> dict | None:
    status, job = host.request("GET", f"/api/jobs/{job_id}")
    assert status == 200, job
    return job if job["status"] in ENDED else None


def completed_activities(log: str, instance_id: str) -> set[tuple[str, str]]:
    """(execution, task) of every activity that ended well: what a restart must never run again."""
    pattern = rf"activity\.end instance={instance_id} execution=(\w+) name=\w+ task=(\d+) .*outcome=ok"
    return set(re.findall(pattern, log))


def begun_activities(log: str, instance_id: str) -> list[tuple[str, str]]:
    return re.findall(rf"activity\.begin instance={instance_id} execution=(\w+) name=\w+ task=(\d+)", log)


def children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (torchrun starts its ranks in sessions of their own, so
    a process group does not find them; the parent chain does)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def descendants(pid: int) -> list[int]:
    children, found, queue = children_map(), [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything below it (children first listed, so none is re-parented unseen)."""
    for target in [*descendants(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGKILL)


def stop_scoring_jobs(temp_root: Path) -> None:
    """Kill every detached local scoring job under temp_root: they outlive devhost by design."""
    for process in temp_root.glob("local-jobs/*/attempt-*/process.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            kill_tree(json.loads(process.read_text())["pid"])


class LogTail:
    """Reads a growing log from an offset, so waiting for one line does not re-read the whole file."""

    def __init__(self, path: Path, offset: int | None = None) -> None:
        self.path = path
        self.offset = path.stat().st_size if offset is None and path.exists() else offset or 0
        self.text = ""

    def read(self) -> str:
        """Complete lines added since the last read (and accumulated in `text`)."""
        if not self.path.exists():
            return ""
        with self.path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        added = complete.decode(errors="replace")
        self.text += added
        return added

    def wait(self, pattern: str, timeout: float, interval: float = 0.01) -> re.Match:
        """The first line from here on that matches `pattern`, polled every `interval` seconds."""
        regex = re.compile(pattern)
        return wait_for(lambda: regex.search(self.read()), timeout, f"a log line matching {pattern!r}", interval)


def write_clip(path: Path, frames: int, size: str, fps: int = 24) -> Path:
    """testsrc2 + a sine as AAC; x264's defaults give one keyframe, so segments are cut by re-encoding."""
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-frames:v", str(frames),
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)
    return path


@dataclass
class Stack:
    """Azurite + a devhost child + containers of their own: one local Restyle deployment."""

    azurite: Azurite
    host: DevhostProcess
    service: BlobServiceClient
    containers: dict[str, str]
    scratch: Path

    @property
    def temp_root(self) -> Path:
        return self.scratch / "work"

    def container(self, kind: str):
        return self.service.get_container_client(self.containers[kind])


def app_env(containers: dict[str, str], scratch: Path, **settings: str) -> dict[str, str]:
    """App settings for short end-to-end runs: fast monitor polls, one scoring process, short segments."""
    env = {f"RESTYLE_{kind.upper()}_CONTAINER": name for kind, name in containers.items()} | {
        "RESTYLE_POLL_INITIAL_SECONDS": "0.5", "RESTYLE_POLL_MAX_SECONDS": "1", "RESTYLE_POLLS_PER_HISTORY": "3",
        "RESTYLE_LOCAL_PROCESSES": "1", "RESTYLE_SEGMENT_SECONDS": "1", "RESTYLE_TEMP_ROOT": str(scratch / "work")}
    return env | {f"RESTYLE_{key.upper()}": value for key, value in settings.items()}


@contextmanager
def running_stack(scratch: Path, *, azurite_args: tuple[str, ...] = (), **settings: str) -> Iterator[Stack]:
    """Start Azurite (with `azurite_args`, e.g. `--debug FILE` to count requests) and devhost in
    `scratch`; both are stopped on the way out, whatever happened."""
    tag = uuid.uuid4().hex[:8]
    containers = {kind: f"e2e{kind}{tag}" for kind in CONTAINER_KINDS}
    azurite = Azurite(scratch / "azurite", extra_args=azurite_args).start()
    host = None
    try:
        service = BlobServiceClient.from_connection_string(azurite.connection)
        for name in containers.values():
            service.create_container(name)
        host = DevhostProcess(free_port(), scratch / "state", azurite.connection, scratch / "devhost.log",
                              env=app_env(containers, scratch, **settings),
                              extra_args=("--blob-poll-seconds", "0.5")).start()
        yield Stack(azurite, host, service, containers, scratch)
    finally:
        if host is not None:
            host.stop()
        stop_scoring_jobs(scratch / "work")
        azurite.stop(grace=1)  # the end: nothing to keep
