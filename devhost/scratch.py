"""How much scratch disk the app uses: bytes under one folder, sampled, with the peak and a cap.

A Flex Consumption instance has about 0.8 GB of temporary disk shared by every activity running
on it; a developer machine has hundreds. The meter makes the small disk visible locally: it
samples the bytes under `Settings.temp_root` (every 50 ms while something is running), keeps the
peak (what a benchmark reports as `peak_scratch_mb`), and calls `on_exceeded` with an ENOSPC
`OSError` worded like the OS's when the cap is passed. It has no devhost dependencies, so bench
scripts can use it in-process around any code.

Sizes are file sizes (`st_size`), not allocated blocks: exact for the files activities write,
and what a test can predict. Files that vanish mid-walk are skipped; symlinks are not followed.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MB = 1024 * 1024


def bytes_under(root: Path) -> int:
    """Total size of the regular files under `root`; tolerant of files and folders vanishing."""
    total, pending = 0, [str(root)]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:  # removed between listing and stat
                        continue
        except OSError:  # the folder itself went away (or never existed)
            continue
    return total


def disk_full(limit_bytes: int, used_bytes: int) -> OSError:
    """The error a full disk raises, with the cap and the usage in the message."""
    return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: scratch cap of {limit_bytes / MB:g} MB exceeded "
                                 f"({used_bytes / MB:.1f} MB in use)")


class ScratchMeter:
    def __init__(self, root: Path, limit_bytes: int | None = None, interval: float = 0.05,
                 on_exceeded: Callable[[OSError], None] | None = None) -> None:
        self.root = Path(root)
        self.limit_bytes = limit_bytes
        self.interval = interval
        self.on_exceeded = on_exceeded
        self.peak_bytes = 0
        self.last_bytes = 0
        self._users = 0
        self._figures = threading.Lock()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        """Measure once: update the last and peak figures, report a passed cap; returns the bytes in use."""
        used = bytes_under(self.root)
        with self._figures:
            self.last_bytes, self.peak_bytes = used, max(self.peak_bytes, used)
        if self.limit_bytes is not None and used > self.limit_bytes and self.on_exceeded:
            self.on_exceeded(disk_full(self.limit_bytes, used))
        return used

    def reset_peak(self) -> None:
        """Start a new measurement (a benchmark case, a test): the peak from now on."""
        with self._figures:
            self.peak_bytes = self.last_bytes = 0

    @contextmanager
    def running(self) -> Iterator[None]:
        """Sample while the body runs (the sampler idles when nothing does); one last sample after it."""
        with self._wake:
            self._users += 1
            self._wake.notify_all()
        try:
            yield
        finally:
            with self._wake:
                self._users -= 1
            self.sample()

    def start(self) -> ScratchMeter:
        self._thread = threading.Thread(target=self._run, name="devhost-scratch-meter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread:
            self._thread.join(timeout=5)

    def status(self) -> dict:
        return {"root": str(self.root), "limit_mb": None if self.limit_bytes is None else self.limit_bytes / MB,
                "in_use_mb": round(self.last_bytes / MB, 3), "peak_mb": round(self.peak_bytes / MB, 3)}

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._stopping or self._users > 0)
                if self._stopping:
                    return
            self.sample()
            with self._wake:
                self._wake.wait(timeout=self.interval)


@contextmanager
def metered(root: Path, limit_bytes: int | None = None, interval: float = 0.05,
            on_exceeded: Callable[[OSError], None] | None = None) -> Iterator[ScratchMeter]:
    """A started meter sampling for the duration of the block (for bench scripts)."""
    meter = ScratchMeter(root, limit_bytes, interval, on_exceeded).start()
    try:
        with meter.running():
            yield meter
    finally:
        meter.stop()
