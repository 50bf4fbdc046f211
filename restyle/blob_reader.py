"""A seekable, read-only file over a blob that fetches only the byte ranges a demuxer asks for.

Functions hosts have little disk (~0.8 GB on Flex Consumption) and our inputs may be 8 GB, so no
activity downloads a whole video: PyAV/libavformat reads through this object, and each miss
fetches one range. Ranges grow while reading is sequential (64 KiB up to 1 MiB, so a linear pass
costs few requests) and shrink back on a jump (so skipping through an index costs few bytes).
Every fetch is pinned to the ETag the job started with: a re-upload mid-job raises SourceChanged.

`zeros` lists byte ranges to serve as zeros without fetching: the payload of an MP4's media data
box when only the sample index is wanted (the demuxer's packet timestamps come from the index).
"""

from __future__ import annotations

import io
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Sequence

from .blob_file import BlobFile
from .storage import BlobStore

MIN_FETCH = 64 * 1024
MAX_FETCH = 1024 * 1024  # past a segment's end a split over-reads at most this: 1 MiB keeps that ~5% of 10 s of 1080p
CACHED_RANGES = 6  # a demuxer alternating between a few regions (interleaved tracks) keeps hitting


class BlobReader(BlobFile):
    """`open()`-like access to `container/name` at version `etag` (None: whatever is current)."""

    def __init__(self, store: BlobStore, container: str, name: str, etag: str | None = None,
                 zeros: Sequence[tuple[int, int]] = ()) -> None:
        super().__init__(container, name)
        self._store, self._etag = store, etag
        info = store.pinned_info(container, name, etag) if etag else store.info(container, name)
        self.size = info.size
        self.etag = info.etag
        self._zeros = sorted(zeros)
        self._cache: OrderedDict[int, bytes] = OrderedDict()  # start offset -> bytes, most recent last
        self._next_fetch = MIN_FETCH
        self._last_end = -1

    def readable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = max(0, self._seek_target(offset, whence, self.size))
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), max(0, self.size - self._pos))
        filled = 0
        while filled < count:
            chunk = self._chunk_at(self._pos + filled, count - filled)
            view[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
        self._pos += filled
        return filled

    def _chunk_at(self, offset: int, wanted: int) -> bytes | memoryview:
        zero_end = self._zero_range_end(offset)
        if zero_end is not None:
            return bytes(min(wanted, zero_end - offset))
        for start, data in reversed(self._cache.items()):
            if start <= offset < start + len(data):
                self._cache.move_to_end(start)
                return memoryview(data)[offset - start:offset - start + wanted]
        return self._fetch(offset, wanted)[:wanted]

    def _zero_range_end(self, offset: int) -> int | None:
        index = bisect_right(self._zeros, (offset, float("inf"))) - 1
        if index >= 0 and self._zeros[index][0] <= offset < self._zeros[index][1]:
            return self._zeros[index][1]
        return None

    def _fetch(self, offset: int, wanted: int) -> bytes:
        self._next_fetch = min(self._next_fetch * 2, MAX_FETCH) if offset == self._last_end else MIN_FETCH
        length = min(max(wanted, self._next_fetch), self.size - offset)
        following_zero = self._next_zero_start(offset)
        if following_zero is not None:
            length = max(min(length, following_zero - offset), 1)
        data = self._store.read_range(self._container, self._name, offset, length, self._etag)
        if len(data) != length:
            raise OSError(f"{self.name}: asked for {length} bytes at {offset}, got {len(data)}")
        self._cache[offset] = data
        while len(self._cache) > CACHED_RANGES:
            self._cache.popitem(last=False)
        self._last_end = offset + length
        return data

    def _next_zero_start(self, offset: int) -> int | None:
        index = bisect_right(self._zeros, (offset, float("inf")))
        return self._zeros[index][0] if index < len(self._zeros) else None
