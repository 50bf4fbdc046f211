"""Finished units reach storage while a local job runs, not only after it."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Protocol

UPLOAD_POLL_SECONDS = 0.5


class Waitable(Protocol):
    """A subprocess.Popen or a RankGroup: what a local job runs as."""

    def wait(self) -> int: ...


def wait_uploading(process: Waitable, upload: Callable[[], None]) -> int:
    """Wait for the job's process(es), calling `upload` every half second meanwhile and once after it ends,
    so finished units reach storage (and progress) while the job runs; returns its exit code."""
    stop = threading.Event()

    def uploader() -> None:
        while not stop.wait(UPLOAD_POLL_SECONDS):
            try:
                upload()
            except Exception as error:  # noqa: BLE001 - a storage outage outlasting the SDK's retries: try again
                print(f"upload failed, will retry: {type(error).__name__}: {error}", file=sys.stderr, flush=True)

    thread = threading.Thread(target=uploader, daemon=True)
    thread.start()
    code = process.wait()
    stop.set()
    thread.join()
    upload()
    return code
