"""devhost as a child process: started, awaited until it serves, and stopped (or killed) by its owner.

For scripts and tests that drive the app as a user would, over HTTP and blob uploads; the child's
log goes to a file so it can be read afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class DevhostProcess:
    def __init__(self, port: int, state_dir: Path, storage: str, log_path: Path, env: dict[str, str] | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._command = [sys.executable, "-m", "devhost", "--port", str(port), "--state-dir", str(state_dir),
                         "--storage", storage, *extra_args]
        self._env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> DevhostProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self._command, cwd=ROOT, env=self._env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # Ctrl-C reaches the owner, who stops it
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/admin/host/status", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"devhost did not start; its log:\n{self.log()[-3000:]}") from None
                time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it does not exit in time."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """`kill -9`: no shutdown at all, as a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def request(self, method: str, path: str, body: object = None, timeout: float = 30.0,
                headers: dict[str, str] | None = None) -> tuple[int, object]:
        """(status, parsed JSON body or None) for a request to this devhost; `headers` add to the
        JSON content type (a session cookie, a key)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, json.loads(raw) if raw else None


@contextmanager
def running_devhost(*args, **kwargs) -> Iterator[DevhostProcess]:
    host = DevhostProcess(*args, **kwargs).start()
    try:
        yield host
    finally:
        host.stop()
