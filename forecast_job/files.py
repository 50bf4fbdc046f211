"""Atomic writes for the job's outputs: a reader, a resumed run or a registrar sees a whole file or
none. A partition counts as done only once its result JSON exists, and that is written last."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_bytes_atomic(destination: Path, data: bytes) -> Path:
    """Write to a hidden temporary file in the same folder, then rename over `destination`."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return destination


def write_text_atomic(destination: Path, text: str) -> Path:
    return write_bytes_atomic(destination, text.encode("utf-8"))
