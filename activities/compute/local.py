"""Local backend: a compute job as a detached process group on this machine (the scoring job under
torchrun, or a many-models run under a process pool; activities.compute.local_runner).

The job outlives the host process that started it. Its state lives on disk (pid, log, exit code
under settings.temp_root/local-jobs/<job>/attempt-N/), so status and cancel work after the host
restarts; progress is read from the result JSONs in blob storage, as for Azure ML.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from restyle.storage import BlobStore
from restyle.telemetry import record_queue_wait
from scoring_job.files import write_text_atomic

from .backend import JobKind, JobState, JobStatus, observe

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


class LocalBackend:
    """At most `settings.local_max_jobs` jobs run at once; the rest wait in submission order and
    are started by whichever status poll finds a free slot (a 2-core laptop runs one job well and
    twenty badly: each job is itself `local_processes` busy ranks)."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store
        self.root = store.settings.temp_root / "local-jobs"

    def _state_dir(self, job_id: str, attempt: int) -> Path:
        return self.root / job_id / f"attempt-{attempt}"

    def submit(self, job_id: str, units_total: int, attempt: int, kind: JobKind = JobKind.STYLIZE,
               events_url: str | None = None) -> dict:
        state = self._state_dir(job_id, attempt)
        state.mkdir(parents=True, exist_ok=True)
        write_text_atomic(state / "queued.json", json.dumps({"job_id": job_id, "kind": kind.value,
                                                             "submitted": time.time(), "events_url": events_url}))
        self._start_waiting()
        return {"backend": "local", "kind": kind.value, "job_id": job_id, "attempt": attempt, "state_dir": str(state),
                "units_total": units_total}

    def status(self, handle: dict) -> JobStatus:
        state = Path(handle["state_dir"])
        done, total, unit, refused = observe(self.store, handle)
        if refused is not None:  # the prepare step refused the table: done, with the reason (no resubmission)
            return JobStatus(JobState.COMPLETED, done, total, f"table refused: {refused}", unit)
        if (state / "canceled").exists():
            return JobStatus(JobState.CANCELED, done, total, "canceled", unit)
        exit_file = state / "exit_code"
        if exit_file.exists():
            result = json.loads(exit_file.read_text())
            if result["code"] == 0:
                return JobStatus(JobState.COMPLETED, done, total, "job finished", unit)
            reason = result.get("error") or f"job exited with code {result['code']}"
            return JobStatus(JobState.FAILED, done, total, f"{reason}; log: {state / 'job.log'}", unit)
        self._start_waiting()
        pid = process_group(state)
        if pid is None:
            limit = self.store.settings.local_max_jobs
            return JobStatus(JobState.QUEUED, done, total, f"waiting for a free local slot ({limit} at a time)", unit)
        if _alive(pid):
            return JobStatus(JobState.RUNNING, done, total, "running", unit)
        message = f"job died without an exit code; log: {state / 'job.log'}"
        return JobStatus(JobState.FAILED, done, total, message, unit)

    def cancel(self, handle: dict) -> None:
        state = Path(handle["state_dir"])
        with self._slots():  # so a queued attempt cannot be started between these two steps
            write_text_atomic(state / "canceled", "canceled")
            pid = process_group(state)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)

    def cancel_job(self, job_id: str) -> int:
        canceled = 0
        for state in sorted((self.root / job_id).glob("attempt-*")):
            if not (state / "exit_code").exists() and not (state / "canceled").exists():
                self.cancel({"state_dir": str(state)})
                canceled += 1
        return canceled

    @contextlib.contextmanager
    def _slots(self):
        """One lock over all local jobs of this machine: devhost polls statuses from several threads."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _start_waiting(self) -> None:
        with self._slots():
            pids = {state: process_group(state) for state in self.root.glob("*/attempt-*")
                    if not (state / "exit_code").exists() and not (state / "canceled").exists()}
            running = sum(1 for pid in pids.values() if pid is not None and _alive(pid))
            waiting = sorted((json.loads((state / "queued.json").read_text()) | {"state": state}
                              for state, pid in pids.items() if pid is None), key=lambda queued: queued["submitted"])
            for queued in waiting[:max(self.store.settings.local_max_jobs - running, 0)]:
                self._launch(queued["state"], queued["job_id"], queued.get("kind", JobKind.STYLIZE),
                             queued.get("events_url"))
                record_queue_wait(time.time() - queued["submitted"], queued["job_id"], "local")

    def _launch(self, state: Path, job_id: str, kind: str, events_url: str | None) -> None:
        settings = self.store.settings
        processes = settings.local_forecast_workers if kind == JobKind.MANY_MODELS else settings.local_processes
        notify = ["--events-url", events_url] if events_url else []
        with (state / "job.log").open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "activities.compute.local_runner", "--job-id", job_id, "--kind", kind,
                 "--state-dir", str(state), "--processes", str(processes), *notify],
                cwd=ROOT, env={**os.environ, **self.store.settings.as_environment()},
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: survives the host, cancellable as one
            )
        write_text_atomic(state / "process.json", json.dumps({"pid": process.pid, "pgid": process.pid}))
        # collects the exit status when the runner ends, so no zombie is left until the next start
        threading.Thread(target=process.wait, name=f"reap-{job_id}", daemon=True).start()


def process_group(state: Path) -> int | None:
    """The runner's pid (= its process group), once the attempt has been started."""
    try:
        return json.loads((state / "process.json").read_text())["pgid"]
    except FileNotFoundError:
        return None
