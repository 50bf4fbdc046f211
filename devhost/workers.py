"""Where scheduled work runs: a bounded pool of activity threads and a wall-clock timer thread.

Activities are sync functions that block for seconds to minutes, so plain threads serve; they are
daemon threads, so a shutdown waits a bounded time for them and leaves the rest to be re-run after
the next start. Timers wait on a heap, never in a request path.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from . import log
from .episode import RunActivity, StartTimer


class ActivityPool:
    def __init__(self, size: int, run: Callable[[RunActivity], None]) -> None:
        if size < 1:
            raise ValueError(f"the activity pool needs at least one worker, got {size}")
        self._run = run
        self._queue: queue.Queue[RunActivity | None] = queue.Queue()
        self._busy = 0
        self._idle = threading.Condition()
        self._threads = [threading.Thread(target=self._work, name=f"devhost-activity-{i}", daemon=True)
                         for i in range(size)]
        for thread in self._threads:
            thread.start()

    def submit(self, work: RunActivity) -> None:
        with self._idle:
            self._busy += 1
        self._queue.put(work)

    def _work(self) -> None:
        while (work := self._queue.get()) is not None:
            try:
                self._run(work)
            except Exception as error:  # noqa: BLE001 - keep the worker alive; the activity is re-run on restart
                log.event("activity.lost", instance=work.instance_id, task=work.task_id, error=repr(error))
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every submitted activity has finished; False if some still run at the timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


class TimerWheel:
    def __init__(self, fire: Callable[[StartTimer], None]) -> None:
        self._fire = fire
        self._due: list[tuple[datetime, int, StartTimer]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="devhost-timers", daemon=True)
        self._thread.start()

    def schedule(self, timer: StartTimer) -> None:
        with self._wake:
            heapq.heappush(self._due, (timer.fire_at, next(self._order), timer))
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping:
                    wait = (self._due[0][0] - datetime.now(UTC)).total_seconds() if self._due else None
                    if wait is not None and wait <= 0:
                        break
                    self._wake.wait(timeout=wait)
                if self._stopping:
                    return
                _, _, timer = heapq.heappop(self._due)
            try:
                self._fire(timer)
            except Exception as error:  # noqa: BLE001 - the timer is pending in the store and re-armed on restart
                log.event("timer.lost", instance=timer.instance_id, task=timer.task_id, error=repr(error))

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self._thread.join(timeout=5)
