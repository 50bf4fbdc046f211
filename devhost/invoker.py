"""Calls user functions as the Python worker does: coroutines on one event loop, others in a thread.

One long-lived loop matters beyond parity: the Durable SDK's client keeps a module-global aiohttp
session bound to the loop that created it, so every client function must run on the same loop.
Only the parameters a function declares are passed.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable


class Invoker:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="devhost-worker-loop", daemon=True)
        self._thread.start()

    def call(self, fn: Callable, arguments: dict[str, object]) -> object:
        declared = inspect.signature(fn).parameters
        kwargs = {name: value for name, value in arguments.items() if name in declared}
        if inspect.iscoroutinefunction(fn):
            return asyncio.run_coroutine_threadsafe(fn(**kwargs), self._loop).result()
        return fn(**kwargs)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
