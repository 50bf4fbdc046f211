"""`restyle up` as a user runs it, in a child process on free ports with a state folder of its own,
for the tests of the `restyle` command and of the jobs page.

The settings keep a job to seconds: short segments, one scoring process, fast monitor polls (the
app reads them from the environment it inherits, as under `restyle up` on a user's machine).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from e2e_support import stop_scoring_jobs

from tools.azurite import connection_string, free_port
from tools.process_group import stop_process_group

ROOT = Path(__file__).resolve().parents[1]
FAST_APP = {"RESTYLE_LOCAL_PROCESSES": "1", "RESTYLE_SEGMENT_SECONDS": "1", "RESTYLE_POLL_INITIAL_SECONDS": "0.5",
            "RESTYLE_POLL_MAX_SECONDS": "1", "RESTYLE_POLLS_PER_HISTORY": "3"}


def ctrl_c_reaches_it() -> None:
    """preexec_fn of a child the test stops with SIGINT: a shell starts background jobs with SIGINT
    ignored, the child would inherit that, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class RestyleUp:
    def __init__(self, state: Path) -> None:
        self.state, self.api_port, self.storage_port = state, free_port(), free_port()
        self.log = state.with_name(state.name + "-up.log")
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def connection(self) -> str:
        return connection_string(self.storage_port)

    def client_env(self) -> dict[str, str]:
        """What a shell running `restyle submit` against this stack sets."""
        return {"RESTYLE_API_URL": self.api_url, "RESTYLE_STORAGE_CONNECTION_STRING": self.connection}

    def start(self, timeout: float = 90) -> RestyleUp:
        offset = len(self.output())  # a restart appends to the same log
        env = {key: value for key, value in os.environ.items() if not key.startswith("RESTYLE_")} | FAST_APP
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tools.cli", "up", "--state", str(self.state), "--port", str(self.api_port),
                 "--storage-port", str(self.storage_port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=ctrl_c_reaches_it)
        deadline = time.monotonic() + timeout
        while "Restyle is up" not in self.output()[offset:]:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"restyle up did not come up:\n{self.output()[-3000:]}")
            time.sleep(0.2)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, timeout: float = 60) -> int | None:
        """Ctrl-C, as a user stops it; its exit status."""
        if self.process and self.process.poll() is None:
            stop_process_group(self.process, signal.SIGINT, timeout)
        return self.process.returncode if self.process else None

    def close(self) -> None:
        self.stop()
        stop_scoring_jobs(self.state / "work")  # detached by design: they outlive the stack
