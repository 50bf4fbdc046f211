"""Local backend: the scoring job under torchrun, as a detached process group on this machine.

The job outlives the host process that started it. Its state lives on disk (pid, log, exit code
under settings.temp_root/local-jobs/<job>/attempt-N/), so status and cancel work after the host
restarts; progress is read from the result JSONs in blob storage, as for Azure ML.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from restyle.storage import BlobStore
from scoring_job.files import write_text_atomic

from .backend import JobState, JobStatus, segments_done

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
    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def _state_dir(self, job_id: str, attempt: int) -> Path:
        return self.store.settings.temp_root / "local-jobs" / job_id / f"attempt-{attempt}"

    def submit(self, job_id: str, segments_total: int, attempt: int) -> dict:
        state = self._state_dir(job_id, attempt)
        state.mkdir(parents=True, exist_ok=True)
        log = state / "job.log"
        with log.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "activities.scoring.local_runner", "--job-id", job_id,
                 "--state-dir", str(state), "--processes", str(self.store.settings.local_processes)],
                cwd=ROOT, env={**os.environ, **self.store.settings.as_environment()},
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: survives the host, cancellable as one
            )
        write_text_atomic(state / "process.json", json.dumps({"pid": process.pid, "pgid": process.pid}))
        return {"backend": "local", "job_id": job_id, "attempt": attempt, "state_dir": str(state),
                "pid": process.pid, "segments_total": segments_total}

    def status(self, handle: dict) -> JobStatus:
        state = Path(handle["state_dir"])
        done = segments_done(self.store, handle["job_id"])
        total = handle["segments_total"]
        if (state / "canceled").exists():
            return JobStatus(JobState.CANCELED, done, total, "canceled")
        exit_file = state / "exit_code"
        if exit_file.exists():
            result = json.loads(exit_file.read_text())
            if result["code"] == 0:
                return JobStatus(JobState.COMPLETED, done, total, "scoring job finished")
            reason = result.get("error") or f"scoring job exited with code {result['code']}"
            return JobStatus(JobState.FAILED, done, total, f"{reason}; log: {state / 'job.log'}")
        if _alive(handle["pid"]):
            return JobStatus(JobState.RUNNING, done, total, "running")
        message = f"scoring job died without an exit code; log: {state / 'job.log'}"
        return JobStatus(JobState.FAILED, done, total, message)

    def cancel(self, handle: dict) -> None:
        state = Path(handle["state_dir"])
        write_text_atomic(state / "canceled", "canceled")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(handle["pid"], signal.SIGTERM)

    def cancel_job(self, job_id: str) -> int:
        canceled = 0
        for state in sorted((self.store.settings.temp_root / "local-jobs" / job_id).glob("attempt-*")):
            process = state / "process.json"
            if process.exists() and not (state / "exit_code").exists() and not (state / "canceled").exists():
                self.cancel({"state_dir": str(state), "pid": json.loads(process.read_text())["pid"]})
                canceled += 1
        return canceled
