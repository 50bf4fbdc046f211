"""Compiled model code and measured timings, kept between jobs and shared between ranks.

`torch.compile` costs tens of seconds on a cold start and a few on a warm one; a short job must
not pay that, and a long one should pay it once per machine, not once per rank and per job. The
cache is a folder (locally under the app's temp root; on Azure ML a read-write mount of the work
datastore, so every node of every job sees it) holding, per compile key:

- `<key>.tar`: Inductor's cache folder as the first compile of the key left it (FX graphs, AOT
  graphs and the built kernels: C++ shared objects on CPU, Triton's on GPU), unpacked into a
  fresh process's own cache folder before it compiles. Measured here (2-core CPU, shared): a cold
  compile of the model took 31-54 s; torch's portable `save_cache_artifacts` cut that only to 46 s
  (it does not carry the built C++ kernels), this folder unpacked to 4.3 s;
- `<key>.json`: the figures measured here (eager seconds a frame, the compiled speedup, cold
  compile and warm load seconds) that decide whether compiling pays for a job's length
  (compile_choice.py).

Ranks of one machine take a lock per key, so the first compiles and saves while the others wait
and then load its work instead of each compiling the same graph at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from .files import write_text_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompileKey:
    """What a compiled graph depends on: the model, the device and precision, the batch shape, torch."""

    model: str
    device: str  # e.g. "cpu:fp32" or "cuda:bf16 NVIDIA H200"
    shape: tuple[int, int, int]  # batch, height, width as fed to the model
    torch_version: str

    @property
    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Figures:
    """Seconds measured for one key; None until measured."""

    eager_s_per_frame: float | None = None
    speedup: float | None = None  # eager / compiled seconds, timed in turns right after a compile
    compile_s: float | None = None  # first compiled call with nothing cached
    load_s: float | None = None  # first compiled call with the artifacts loaded


def default_cache_folder() -> Path:
    """Where compiled code is kept when the caller names no folder: per machine, across jobs."""
    return Path(os.environ.get("RESTYLE_COMPILE_CACHE") or Path(tempfile.gettempdir()) / "restyle-compile-cache")


def _move_into(staging: Path, folder: Path) -> None:
    """Each file renamed into place: a process running a kernel from the same name keeps its own
    (renaming swaps the entry, never the bytes a running process has mapped; writing over the
    file did, and crashed it). Inductor's names are content hashes, so both are the same code."""
    for source in sorted(staging.rglob("*")):
        if source.is_file():
            target = folder / source.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)


class CompileCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: CompileKey, suffix: str) -> Path:
        return self.folder / f"{key.digest}{suffix}"

    def figures(self, key: CompileKey) -> Figures:
        try:
            stored = json.loads(self._path(key, ".json").read_text(encoding="utf-8"))["figures"]
            return Figures(**{name: stored.get(name) for name in Figures.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError):
            return Figures()

    def record(self, key: CompileKey, **measured: float) -> Figures:
        """Merge new measurements into the key's figures (the latest measurement of each wins)."""
        figures = Figures(**{**asdict(self.figures(key)), **measured})
        payload = {"key": asdict(key), "figures": asdict(figures)}
        write_text_atomic(self._path(key, ".json"), json.dumps(payload, indent=2))
        return figures

    def has_artifacts(self, key: CompileKey) -> bool:
        return self._path(key, ".tar").is_file()

    def unpack(self, key: CompileKey, inductor_folder: Path) -> bool:
        """Put the key's compiled code into this Inductor folder, unless an earlier process already did
        (the folder is shared by the ranks of a machine: files in use are never rewritten); False if
        the cache has none or it is unusable. Call under the key's lock."""
        marker = self._marker(key, inductor_folder)
        if marker.is_file() and self.has_artifacts(key):
            return True
        staging = Path(tempfile.mkdtemp(prefix=".restyle-unpack-", dir=inductor_folder))
        try:
            with tarfile.open(self._path(key, ".tar")) as archive:
                archive.extractall(staging, filter="data")
            _move_into(staging, inductor_folder)
            marker.touch()
        except FileNotFoundError:
            return False
        except (OSError, tarfile.TarError) as error:  # a torn or foreign file only costs a compile
            log.warning("compile cache %s unusable (%s); compiling afresh", key.digest, error)
            return False
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True

    def pack(self, key: CompileKey, inductor_folder: Path) -> None:
        target = self._path(key, ".tar")
        partial = target.with_name(target.name + ".partial")
        with tarfile.open(partial, "w") as archive:
            for entry in sorted(inductor_folder.iterdir()):
                if entry.name != "locks" and not entry.name.lstrip(".").startswith("restyle-"):
                    archive.add(entry, arcname=entry.name)
        partial.replace(target)
        self._marker(key, inductor_folder).touch()  # this folder holds the key's code already

    @staticmethod
    def _marker(key: CompileKey, inductor_folder: Path) -> Path:
        return inductor_folder / f"restyle-{key.digest}.unpacked"

    @contextlib.contextmanager
    def lock(self, key: CompileKey, wait: bool = True) -> Iterator[bool]:
        """One compiler per key at a time on this machine (flock; other machines just compile).
        Yields whether this process holds it: with wait=False, False when another one does."""
        with self._path(key, ".lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            except OSError:  # a file system without locks (a blob mount): ranks may compile side by side
                yield True
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
