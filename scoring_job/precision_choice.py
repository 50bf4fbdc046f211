"""`precision: fast`: the user allows reduced precision; this machine's own timings pick which.

On CPU, `auto` is always fp32. `fast` times the network once per machine in fp32 and in every
reduced precision the CPU offers (int8 image conv, bf16, fp16; each keeps >= 35 dB PSNR against
fp32 on real frames, tests/test_precision.py), and picks the fastest only if it beats fp32 by
more than MARGIN; otherwise fp32 stays. CPU flags alone do not tell: on this project's 2-core
Xeon VM (AVX512_BF16 and AVX512_FP16, AMX not exposed) oneDNN's bf16 and fp16 convolutions
measured 1.4-2x SLOWER than fp32, while bench/scoring.py's earlier host ran bf16 2.1x faster.
The timing is short (eager, one 368x640 frame, the precisions in turns, best of three after a
warm-up; 5-10 s in all on 2 cores) and is stored per CPU model, core count and torch version, so
later jobs on the same kind of machine read it instead of measuring again.
On CUDA `fast` means what `auto` means there (bf16, fp16 without bf16).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .files import write_text_atomic

log = logging.getLogger(__name__)

REDUCED_CPU_PRECISIONS = ("int8", "bf16", "fp16")
MARGIN = 1.05  # a reduced precision must be at least 5% faster than fp32 to be chosen
ROUNDS = 3  # each precision is timed this many times, in turns, and keeps its best
TIMING_SIZE = (368, 640)  # height, width of the timed frame
Timer = Callable[[str], float]  # precision -> seconds a frame


def cpu_candidates() -> list[str]:
    """Reduced precisions this torch can run on this CPU."""
    from .models.int8 import int8_supported

    supported = {
        "int8": int8_supported(),
        "bf16": torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported(),
        "fp16": torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_fp16_supported(),
    }
    return [name for name in REDUCED_CPU_PRECISIONS if supported[name]]


def pick(candidates: Sequence[str], timer: Timer, rounds: int = ROUNDS) -> tuple[str, dict[str, float]]:
    """fp32 unless a candidate is measured more than MARGIN faster; the best timings come back too.

    The precisions are timed in turns, `rounds` times, and each keeps its best: on a shared
    machine a burst of other work then hits all of them instead of deciding the outcome.
    """
    names = ["fp32", *candidates]
    seconds = {name: float("inf") for name in names}
    for _ in range(rounds):
        for name in names:
            seconds[name] = min(seconds[name], timer(name))
    best = min(candidates, key=seconds.__getitem__, default=None)
    choice = best if best is not None and seconds[best] * MARGIN < seconds["fp32"] else "fp32"
    return choice, seconds


class EagerTimer:
    """Seconds a frame of the 26-style network in a precision, eager, on one TIMING_SIZE frame."""

    def __init__(self) -> None:
        height, width = TIMING_SIZE
        ramp = np.linspace(0, 255, height * width * 3, dtype=np.float32).astype(np.uint8)
        self.frame = ramp.reshape(1, height, width, 3)
        self.stylizers: dict = {}

    def __call__(self, precision: str) -> float:
        from .engine import Stylizer, choose_device
        from .style_spec import parse_style

        if precision not in self.stylizers:
            self.stylizers[precision] = Stylizer(parse_style("19"), choose_device("cpu", 1, precision))
            self.stylizers[precision](self.frame)  # creates oneDNN's primitives
        started = time.perf_counter()
        self.stylizers[precision](self.frame)
        return time.perf_counter() - started


def machine_key() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model} | {os.cpu_count()} cpus | torch {torch.__version__}"


def default_cache_file() -> Path:
    return Path(tempfile.gettempdir()) / "restyle-cache" / "precision.json"


def fast_cpu_precision(timer: Timer | None = None, cache_file: Path | None = None,
                       candidates: Sequence[str] | None = None) -> str:
    """The precision `fast` runs on this CPU: read from the cache, else measured now and stored."""
    cache_file = cache_file or default_cache_file()
    key = machine_key()
    try:
        known = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), dict) and "choice" in known[key]:
        return known[key]["choice"]
    candidates = cpu_candidates() if candidates is None else candidates
    choice, seconds = pick(candidates, timer or EagerTimer())
    log.info("precision fast on this CPU: %s (seconds a %dx%d frame: %s)", choice, TIMING_SIZE[1], TIMING_SIZE[0],
             ", ".join(f"{name} {value:.3f}" for name, value in seconds.items()))
    known[key] = {"choice": choice, "seconds_per_frame": seconds}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cache_file, json.dumps(known, indent=2))
    except OSError as error:  # a read-only cache only costs the measurement next time
        log.warning("cannot store the precision timing in %s: %s", cache_file, error)
    return choice
