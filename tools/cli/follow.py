"""Following jobs until they end: one progress bar per job on a terminal (tqdm), one line per change
otherwise (logs, CI, tests), then the output video and its before/after preview downloaded.

Following only reads the API: stopping it (Ctrl-C) leaves the jobs running.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from azure.core.exceptions import AzureError
from tqdm import tqdm

from restyle.storage import BlobNotFound

from .target import NotFound, Target, storage_error

ENDED = ("Completed", "Failed", "Terminated", "Canceled")
FAILURE_PREFIX = "Orchestrator function 'stylize_video' failed: "


def progress_text(job: dict) -> str:
    """`Running stage=scoring segments=2/6 fps=12.3 eta=40s`: a job's state in one line."""
    progress = job.get("progress") or {}
    parts = [f"{job['status']}", f"stage={job.get('stage')}"]
    if "segments_total" in progress:
        parts.append(f"segments={progress.get('segments_done', 0)}/{progress['segments_total']}")
    if progress.get("frames_per_second"):
        parts.append(f"fps={progress['frames_per_second']}")
    if progress.get("eta_seconds") is not None and job["status"] not in ENDED:
        parts.append(f"eta={progress['eta_seconds']}s")
    return " ".join(parts)


def failure_text(job: dict) -> str:
    """Why a job ended without output, in the orchestrator's words (its wrapper's prefix removed)."""
    return (job.get("error") or "no reason recorded").removeprefix(FAILURE_PREFIX)


@dataclass
class Watched:
    """One job being followed; `label` names it on screen (the upload's file name)."""

    job_id: str
    label: str
    job: dict | None = None
    shown: str = ""
    bar: tqdm | None = field(default=None, repr=False)

    @property
    def ended(self) -> bool:
        return bool(self.job) and self.job["status"] in ENDED


class Display:
    """Bars on a terminal, lines elsewhere."""

    def __init__(self, watched: Sequence[Watched], stream=None) -> None:
        self.stream = stream or sys.stderr
        self.bars = self.stream.isatty()
        self.watched = watched
        if self.bars:
            width = max(len(w.label) for w in watched)
            for position, item in enumerate(watched):
                item.bar = tqdm(total=0, desc=item.label.ljust(width), position=position, leave=True, file=self.stream,
                                unit="seg", dynamic_ncols=True,
                                bar_format="{desc} {percentage:3.0f}%|{bar}| {n}/{total} segments{postfix}")

    def show(self, item: Watched, waiting: str | None = None) -> None:
        text = waiting or progress_text(item.job)
        if self.bars:
            progress = (item.job or {}).get("progress") or {}
            item.bar.total = progress.get("segments_total") or item.bar.total
            item.bar.n = progress.get("segments_done", item.bar.n)
            item.bar.set_postfix_str(self._postfix(item, waiting), refresh=False)
            item.bar.refresh()
        elif text != item.shown:
            print(f"{item.label} [{item.job_id}]: {text}", file=self.stream, flush=True)
        item.shown = text

    @staticmethod
    def _postfix(item: Watched, waiting: str | None) -> str:
        if waiting:
            return waiting
        job, progress = item.job, item.job.get("progress") or {}
        parts = [job["status"] if job["status"] in ENDED or not job.get("stage") else job["stage"]]
        if progress.get("frames_per_second"):
            parts.append(f"{progress['frames_per_second']} frames/s")
        if progress.get("eta_seconds") is not None and job["status"] not in ENDED:
            parts.append(f"ETA {_duration(progress['eta_seconds'])}")
        return " · ".join(parts)

    def close(self) -> None:
        if self.bars:
            for item in self.watched:
                item.bar.close()


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def follow(target: Target, watched: Sequence[Watched], interval: float = 1.0,
           sleep: Callable[[float], None] = time.sleep) -> list[dict]:
    """Poll every job until all have ended; returns their last views. A job the API does not know yet
    is waiting for the blob trigger (it polls storage every few seconds locally)."""
    display = Display(watched)
    try:
        while True:
            for item in watched:
                if item.ended:
                    continue
                try:
                    item.job = target.api.request("GET", f"jobs/{item.job_id}")
                    display.show(item)
                except NotFound:
                    display.show(item, waiting="waiting for the blob trigger to start the job")
            if all(item.ended for item in watched):
                return [item.job for item in watched]
            sleep(interval)
    finally:
        display.close()


def download_results(target: Target, job: dict, folder: Path) -> list[Path]:
    """A Completed job's output video and preview image into `folder` (each whole or not at all)."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for kind in ("output_blob", "preview_blob"):
        container, _, name = ((job.get("output") or {}).get(kind) or "").partition("/")
        if not name:
            continue
        path = folder / Path(name).name
        partial = path.with_name(path.name + ".partial")
        try:
            target.store.download_file(container, name, partial)
        except BlobNotFound:
            partial.unlink(missing_ok=True)
            raise NotFound(f"{container}/{name} is gone (removed after the job finished?)") from None
        except AzureError as error:
            partial.unlink(missing_ok=True)
            raise storage_error(target, error) from None
        saved.append(partial.replace(path))
    return saved
