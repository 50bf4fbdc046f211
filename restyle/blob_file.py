"""What PyAV needs of a file, over one blob: a name, a position and seeking (reader and writer share it)."""

from __future__ import annotations

import io


class BlobFile(io.RawIOBase):
    def __init__(self, container: str, name: str) -> None:
        super().__init__()
        self._container, self._name = container, name
        self._pos = 0

    @property
    def name(self) -> str:
        return f"{self._container}/{self._name}"

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def _seek_target(self, offset: int, whence: int, end: int) -> int:
        return {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: end}[whence] + offset
