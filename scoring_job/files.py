"""Atomic file writes: a reader (or a resumed job) sees a whole file or none, never half of one."""

from __future__ import annotations

import os
from pathlib import Path


def partial_path(destination: Path) -> Path:
    """Hidden temporary name beside `destination`, unique per process, on the same filesystem."""
    return destination.with_name(f".{destination.name}.{os.getpid()}.partial")


def write_text_atomic(destination: Path, text: str) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(destination)
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, destination)
    return destination
