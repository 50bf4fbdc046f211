"""A write-only, seekable file that streams into a block blob: the output never lands on local disk.

Muxers write front to back, then go back once to patch a few header bytes (an MP4's media-data
size, a Matroska segment size and seek head) and append an index (MP4 `moov`, Matroska cues).
So: the first `head_bytes` stay in memory and may be patched until the end; everything after them
is staged as 4 MiB blocks while it is written (two uploads in flight, memory bounded); what is
written after the first patch is the trailer. `finish()` commits head, body and trailer in one
block list, so readers see either the old blob or the whole new one. An MP4 trailer can be moved
in front of the media data on commit (`trailer_first`), which is what makes a file faststart.
"""

from __future__ import annotations

import base64
import contextvars
import io
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from .blob_file import BlobFile
from .storage import BlobStore

BLOCK_BYTES = 4 * 1024 * 1024
HEAD_BYTES = 8 * 1024 * 1024
UPLOADS_IN_FLIGHT = 2


class UnpatchableWrite(OSError):
    """A muxer tried to rewrite bytes that were already uploaded."""


def block_id(number: int) -> str:
    """Block ids must all have the same length within a blob."""
    return base64.b64encode(f"block-{number:08d}".encode()).decode()


class BlobWriter(BlobFile):
    """Streams `container/name`; `finish()` publishes it, `abort()` (or an error) leaves nothing visible."""

    def __init__(self, store: BlobStore, container: str, name: str, head_bytes: int = HEAD_BYTES) -> None:
        super().__init__(container, name)
        self._store = store
        self._head = bytearray()
        self._head_limit = head_bytes
        self._pending = bytearray()  # body bytes not yet staged
        self._staged = 0  # body bytes staged so far, right after the head
        self._blocks: list[str] = []
        self._uploads: list[Future] = []
        self._executor = ThreadPoolExecutor(UPLOADS_IN_FLIGHT, thread_name_prefix="blob-writer")
        self._end = 0  # highest position written
        self._data_end: int | None = None  # set by the first seek back: what follows is the trailer
        self._trailer = bytearray()

    def writable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = self._seek_target(offset, whence, self._end)
        if target < self._pos and self._data_end is None:
            self._data_end = self._end
        self._pos = target
        return target

    def write(self, data) -> int:
        data = bytes(data)
        if self._data_end is not None and self._pos >= self._data_end:
            self._write_trailer(data)
        elif self._pos < self._head_limit and self._pos <= len(self._head):
            self._write_head(data)
        elif self._pos == self._head_limit + self._staged + len(self._pending):
            self._append_body(data)
        else:
            raise UnpatchableWrite(f"{self.name}: cannot rewrite bytes at {self._pos} (already uploaded)")
        self._pos += len(data)
        self._end = max(self._end, self._pos)
        return len(data)

    def _write_head(self, data: bytes) -> None:
        room = self._head_limit - self._pos
        inside, rest = data[:room], data[room:]
        self._head[self._pos:self._pos + len(inside)] = inside
        if rest:
            self._append_body(rest)

    def _append_body(self, data: bytes) -> None:
        self._pending += data
        while len(self._pending) >= BLOCK_BYTES:
            self._stage(bytes(self._pending[:BLOCK_BYTES]))
            del self._pending[:BLOCK_BYTES]

    def _write_trailer(self, data: bytes) -> None:
        offset = self._pos - self._data_end
        if offset > len(self._trailer):
            raise UnpatchableWrite(f"{self.name}: gap in the trailer at {self._pos}")
        self._trailer[offset:offset + len(data)] = data

    def _stage(self, data: bytes) -> None:
        number = len(self._blocks) + 1  # block 0 is the head
        self._blocks.append(block_id(number))
        self._staged += len(data)
        while len(self._uploads) >= UPLOADS_IN_FLIGHT:
            self._uploads.pop(0).result()
        # in a copy of this context, so the upload's bytes are counted for the activity that writes
        self._uploads.append(self._executor.submit(contextvars.copy_context().run, self._store.stage_block,
                                                   self._container, self._name, block_id(number), data))

    def finish(self, content_type: str, metadata: dict[str, str] | None = None,
               reorder: Callable[[bytes, bytes], bytes] | None = None) -> int:
        """Commit; `reorder(head, trailer)` may return a new head that carries the trailer (then the
        trailer is not appended). Returns the blob's size."""
        if self._pending:
            self._stage(bytes(self._pending))
            self._pending.clear()
        for upload in self._uploads:
            upload.result()
        self._executor.shutdown()
        head, trailer = bytes(self._head), bytes(self._trailer)
        if reorder is not None:
            head, trailer = reorder(head, trailer), b""
        parts = [(block_id(0), head), *([(block_id(len(self._blocks) + 1), trailer)] if trailer else [])]
        for number, data in parts:
            self._store.stage_block(self._container, self._name, number, data)
        order = [block_id(0), *self._blocks, *([parts[1][0]] if trailer else [])]
        self._store.commit_blocks(self._container, self._name, order, metadata=metadata, content_type=content_type)
        return len(head) + self._staged + len(trailer)

    def abort(self) -> None:
        """Nothing was committed; staged blocks expire on their own (Azure drops them after a week)."""
        for upload in self._uploads:
            upload.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
