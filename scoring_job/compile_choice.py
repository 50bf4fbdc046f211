"""Compile the model only when it pays for the frames this rank has left.

Compiling saves eager x (1 - 1/speedup) seconds on every frame and costs `compile_s` once, or
only `load_s` when an earlier job or rank left its artifacts in the cache. The figures are this
machine's own, measured and stored in the cache (compile_cache.py). The first time a key is seen
the eager time is unknown: the rank starts eagerly, times its second batch (the first also
creates the kernels' primitives) and decides then, so nothing is run only to be measured. The
speedup and the compile and load costs are measured each time they happen; until then the
defaults below stand in.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .compile_cache import CompileCache, CompileKey, Figures
from .engine import Stylizer
from .machine import cpu_kind

log = logging.getLogger(__name__)

CompileMode = Literal["auto", "always", "never"]

# Stand-ins until this machine has measured its own. bench/latency.py on the 2-core Xeon, CPU fp32,
# 640x360, quiet: compiled 1.14x eager with 1 thread, 1.28x with 2; a cold compile 23-26 s, a
# load from the cache on a fresh node 2.6-2.9 s (bench/results/latency.json, compile_figures).
DEFAULT_SPEEDUP = 1.2
DEFAULT_COMPILE_S = 25.0
DEFAULT_LOAD_S = 3.0


@dataclass(frozen=True)
class Choice:
    compile: bool
    frames: int
    saving_s: float  # what compiling would save over the frames left
    cost_s: float  # what it would cost: a cold compile, or loading cached artifacts
    cached: bool


def decide(frames: int, figures: Figures, cached: bool) -> Choice:
    """Compile when the time saved over `frames` exceeds the compile (or cache load) time."""
    eager = figures.eager_s_per_frame or 0.0
    saving = frames * eager * (1 - 1 / (figures.speedup or DEFAULT_SPEEDUP))
    cost = (figures.load_s or DEFAULT_LOAD_S) if cached else (figures.compile_s or DEFAULT_COMPILE_S)
    return Choice(saving > cost, frames, saving, cost, cached)


def compile_key(stylizer: Stylizer, height: int, width: int) -> CompileKey:
    device = stylizer.device_name
    if stylizer.config.device.type == "cuda":
        device += " " + torch.cuda.get_device_name(stylizer.config.device)
    else:  # Inductor's C++ kernels and the timings are those of this kind of CPU (AVX2, AVX-512, AMX)
        device += " " + cpu_kind()
    return CompileKey(type(stylizer.model).__name__, device, (stylizer.config.batch_size, height, width),
                      torch.__version__)


class CompileWhenItPays:
    """Decides for one rank, from the cache's figures or from its own second eager batch."""

    def __init__(self, stylizer: Stylizer, height: int, width: int, frames: int, cache: CompileCache,
                 warm_args: Sequence[str] = ()) -> None:
        self.stylizer, self.cache, self.frames_left = stylizer, cache, frames
        self.warm_args = list(warm_args)  # the model for compile_warm.py; none: no background compile
        self.warmer: subprocess.Popen | None = None
        self.key = compile_key(stylizer, height, width)
        self.shape = (stylizer.config.batch_size, height, width, 3)
        self.batches_seen = 0
        self.choice: Choice | None = None

    def start(self) -> None:
        figures = self.cache.figures(self.key)
        if figures.eager_s_per_frame is not None:
            self._decide(figures)
        else:
            self.stylizer.after_batch = self._observe

    def _observe(self, frames: int, seconds: float) -> None:
        self.frames_left -= frames
        self.batches_seen += 1
        if self.batches_seen >= 2:
            self.stylizer.after_batch = None
            self._decide(self.cache.record(self.key, eager_s_per_frame=seconds / frames))

    def _decide(self, figures: Figures) -> None:
        self.choice = decide(self.frames_left, figures, self.cache.has_artifacts(self.key))
        log.info("compile: %s for %d frames (saves ~%.1f s, costs ~%.1f s%s)",
                 "yes" if self.choice.compile else "no", self.frames_left, self.choice.saving_s,
                 self.choice.cost_s, ", cached" if self.choice.cached else "")
        if self.choice.compile:
            compile_through_cache(self.stylizer, self.key, np.zeros(self.shape, np.uint8), self.cache)
        elif not self.choice.cached and self.warm_args and decide(self.frames_left, figures, cached=True).compile:
            self._warm_in_background()

    def _warm_in_background(self) -> None:
        """Too short for a cold compile, long enough to load one: compile it for the next job."""
        batch, height, width, _ = self.shape
        log.info("compile: the next job of this kind would load it: compiling in the background (nice 19)")
        self.warmer = subprocess.Popen(
            [sys.executable, "-m", "scoring_job.compile_warm", "--cache", str(self.cache.folder), *self.warm_args,
             "--batch-size", str(batch), "--height", str(height), "--width", str(width)],
            env={**os.environ, "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_COMPILE_THREADS": "1"},
            stdin=subprocess.DEVNULL)


def prepare_model(stylizer: Stylizer, height: int, width: int, frames: int, mode: CompileMode,
                  cache: CompileCache, warm_args: Sequence[str] = ()) -> CompileWhenItPays | None:
    """Eager, compiled now (loaded from the cache when there), or left to decide under `auto`
    (`warm_args` describe the model to compile_warm.py, for a compile in the background)."""
    if mode == "never":
        return None
    policy = CompileWhenItPays(stylizer, height, width, frames, cache, warm_args)
    if mode == "always":
        compile_through_cache(stylizer, policy.key, np.zeros(policy.shape, np.uint8), cache)
        return None
    policy.start()
    return policy


def _seconds(stylizer: Stylizer, batch: np.ndarray) -> float:
    started = time.perf_counter()
    stylizer(batch)  # returns host frames, so a GPU has finished when it returns
    return time.perf_counter() - started


def _inductor_folder() -> Path:
    """This process's Inductor cache folder (TORCHINDUCTOR_CACHE_DIR, else Inductor's default)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    folder = Path(cache_dir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def compile_through_cache(stylizer: Stylizer, key: CompileKey, batch: np.ndarray, cache: CompileCache,
                          wait: bool = True, measure: bool = True) -> bool:
    """Switch to compiled code and record the compile or load time and the compiled speed. A cold
    compile holds the key's lock, so the other ranks of this machine wait and then load what it
    saved instead of compiling the same graph beside it; loads run side by side. With wait=False
    nothing happens if another process holds the lock (returns False). measure=False records no
    timings (a nice-19 process's would be those of a starved process, not of the job's)."""
    inductor_folder = _inductor_folder()
    with cache.lock(key, wait=wait) as held:
        if not held:
            return False
        stylizer.use_compiled()
        loaded = cache.unpack(key, inductor_folder)
        if not loaded:
            first = _seconds(stylizer, batch)
            if not stylizer.compiled:
                return False  # no working compiler: eager it is
            cache.pack(key, inductor_folder)
            if measure:
                cache.record(key, compile_s=first)
    if not measure:
        return True
    if loaded:
        cache.record(key, load_s=_seconds(stylizer, batch))
    cache.record(key, speedup=_speedup(stylizer, batch))  # after each load too: the latest ratio decides
    return True


def _speedup(stylizer: Stylizer, batch: np.ndarray, turns: int = 2) -> float:
    """Eager over compiled time, the two timed in turns (best of each), so that other work on a
    shared machine slows both alike: a ratio, where absolute times taken apart would mislead."""
    compiled, eager = [], []
    for _ in range(turns):
        compiled.append(_seconds(stylizer, batch))
        with stylizer.running_eagerly():
            eager.append(_seconds(stylizer, batch))
    return min(eager) / min(compiled)
