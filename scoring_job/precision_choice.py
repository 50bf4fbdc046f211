"""`precision: fast`: a reduced precision only where this machine runs it faster AND the job's own
frames keep their picture.

Neither can be read from CPU flags. On one 2-core Xeon oneDNN's bf16 convolutions ran 1.4-2x
slower than fp32, on another host 2.1x faster; the int8 image conv held 46-51 dB against fp32 on
AVX-512 VNNI machines and gave 21-22 dB on an AVX2-only Zen 3 (int16 saturation, models/int8.py).
So a candidate (int8 image conv, bf16, fp16) is accepted only when both are measured:

- speed, per machine: fp32 and every candidate timed in turns (eager, one 368x640 frame, best of
  three after a warm-up, 5-10 s on 2 cores), stored per machine key (machine.py) beside the
  compile figures, so later jobs on the same kind of machine read it; a candidate must be more
  than MARGIN faster than fp32;
- quality, per job: its output on the job's own first frames (the most detailed SAMPLE_FRAMES of
  the first SAMPLE_WINDOW) at least QUALITY_DB PSNR against fp32's on every frame checked. It
  depends on the content and the style, so it is not cached.

Candidates are tried fastest first; the first that passes both runs the job, else fp32. The
verdicts (speed ratio, PSNR, the reason for each refusal) go into the log and the job's result.
On CUDA `fast` means what `auto` means there (bf16, fp16 without bf16): no gate.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .engine import Stylizer, choose_device
from .files import write_text_atomic
from .machine import machine_key
from .quality import psnr
from .style_spec import Style, parse_style

log = logging.getLogger(__name__)

REDUCED_CPU_PRECISIONS = ("int8", "bf16", "fp16")
MARGIN = 1.05  # a reduced precision must be more than 5% faster than fp32 to be chosen
QUALITY_DB = 35.0  # ... and keep at least this PSNR against fp32 on every frame checked
ROUNDS = 3  # each precision is timed this many times, in turns, and keeps its best
TIMING_SIZE = (368, 640)  # height, width of the timed frame
SAMPLE_WINDOW = 25  # the job's first frames read for the quality check (1 s at 25 fps)
SAMPLE_FRAMES = 2  # of which the most detailed are checked (a fade-in's black frames prove nothing)
CACHE_NAME = "precision-timings.json"
Timer = Callable[[str], float]  # precision -> seconds a frame
Quality = Callable[[str], float]  # precision -> lowest PSNR (dB) against fp32 over the frames checked


@dataclass(frozen=True)
class Verdict:
    """One candidate's measurements and why it was taken or not."""

    precision: str
    accepted: bool
    reason: str
    speedup: float | None = None  # fp32's seconds a frame over the candidate's, on this machine
    psnr_db: float | None = None  # lowest over the job's frames checked; None where not measured


@dataclass(frozen=True)
class FastChoice:
    precision: str
    verdicts: tuple[Verdict, ...]
    frames_checked: int
    machine: str

    def as_dict(self) -> dict:
        return {"precision": self.precision, "frames_checked": self.frames_checked, "machine": self.machine,
                "min_psnr_db": QUALITY_DB, "min_speedup": MARGIN,
                "candidates": [{key: (round(value, 3) if isinstance(value, float) and math.isfinite(value) else value)
                                for key, value in asdict(verdict).items()} for verdict in self.verdicts]}

    def summary(self) -> str:
        """One log line: what runs, and why each other candidate does not."""
        return f"precision fast: {self.precision} on {self.machine}; " + "; ".join(
            f"{verdict.precision} {'accepted' if verdict.accepted else 'refused'}: {verdict.reason}"
            for verdict in self.verdicts)


def cpu_support() -> dict[str, bool]:
    """Which reduced precisions this torch can run on this CPU at all."""
    from .models.int8 import int8_supported

    mkldnn = torch.backends.mkldnn.is_available()
    return {"int8": int8_supported(),
            "bf16": mkldnn and torch.ops.mkldnn._is_mkldnn_bf16_supported(),
            "fp16": mkldnn and torch.ops.mkldnn._is_mkldnn_fp16_supported()}


def time_in_turns(candidates: Sequence[str], timer: Timer, rounds: int = ROUNDS) -> dict[str, float]:
    """Best seconds a frame of fp32 and each candidate, timed in turns `rounds` times: on a shared
    machine a burst of other work then hits all of them instead of deciding the outcome."""
    seconds = {name: math.inf for name in ("fp32", *candidates)}
    for _ in range(rounds):
        for name in seconds:
            seconds[name] = min(seconds[name], timer(name))
    return seconds


def gate(seconds: Mapping[str, float], quality: Quality, unsupported: Sequence[str] = ()) -> tuple[str, list[Verdict]]:
    """The rule: fastest candidate first; taken if more than MARGIN faster than fp32 and at least
    QUALITY_DB against fp32 on the job's frames; else the next; else fp32."""
    verdicts, choice = [], "fp32"
    for name in sorted((name for name in seconds if name != "fp32"), key=seconds.__getitem__):
        speedup = seconds["fp32"] / seconds[name]
        if choice != "fp32":
            verdicts.append(Verdict(name, False, f"not needed: {choice} is faster and passed", speedup))
            continue
        if not speedup > MARGIN:
            verdicts.append(Verdict(name, False, f"{speedup:.2f}x fp32's speed here, needs more than {MARGIN:.2f}x",
                                    speedup))
            continue
        try:
            score = quality(name)
        except Exception as error:  # noqa: BLE001 - a candidate that cannot run is refused, not fatal
            verdicts.append(Verdict(name, False, f"failed on the job's frames: {error}", speedup))
            continue
        if not score >= QUALITY_DB:  # NaN (nothing to compare) is refused too
            verdicts.append(Verdict(name, False, f"{score:.1f} dB against fp32 on the job's frames, needs "
                                                 f">= {QUALITY_DB:.0f} dB", speedup, score))
            continue
        choice = name
        verdicts.append(Verdict(name, True, f"{speedup:.2f}x fp32's speed at {score:.1f} dB", speedup, score))
    verdicts += [Verdict(name, False, "this CPU or torch build cannot run it") for name in unsupported]
    return choice, verdicts


class EagerTimer:
    """Seconds a frame of the 26-style network in a precision, eager, on one TIMING_SIZE frame."""

    def __init__(self) -> None:
        height, width = TIMING_SIZE
        ramp = np.linspace(0, 255, height * width * 3, dtype=np.float32).astype(np.uint8)
        self.frame = ramp.reshape(1, height, width, 3)
        self.stylizers: dict[str, Stylizer] = {}

    def __call__(self, precision: str) -> float:
        import time

        if precision not in self.stylizers:
            self.stylizers[precision] = Stylizer(parse_style("19"), choose_device("cpu", 1, precision))
            self.stylizers[precision](self.frame)  # creates oneDNN's primitives
        started = time.perf_counter()
        self.stylizers[precision](self.frame)
        return time.perf_counter() - started


def machine_seconds(candidates: Sequence[str], timer: Timer | None = None, cache_file: Path | None = None
                    ) -> dict[str, float]:
    """Seconds a frame per precision on this kind of machine: stored ones, else measured now and stored."""
    cache_file = cache_file or default_cache_file()
    key = machine_key()
    try:
        known = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    stored = known.get(key, {}).get("seconds_per_frame", {}) if isinstance(known.get(key), dict) else {}
    if all(isinstance(stored.get(name), (int, float)) for name in ("fp32", *candidates)):
        return {name: float(stored[name]) for name in ("fp32", *candidates)}
    seconds = time_in_turns(candidates, timer or EagerTimer())
    log.info("precision timings on this CPU (seconds a %dx%d frame): %s", TIMING_SIZE[1], TIMING_SIZE[0],
             ", ".join(f"{name} {value:.3f}" for name, value in seconds.items()))
    known[key] = {"seconds_per_frame": seconds}
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cache_file, json.dumps(known, indent=2))
    except OSError as error:  # a read-only cache only costs the measurement next time
        log.warning("cannot store the precision timings in %s: %s", cache_file, error)
    return seconds


def default_cache_file() -> Path:
    from .compile_cache import default_cache_folder

    return default_cache_folder() / CACHE_NAME


def most_detailed(frames: np.ndarray, count: int = SAMPLE_FRAMES) -> np.ndarray:
    """The `count` frames with the most variation, in their order (flat frames hide any error)."""
    if len(frames) <= count:
        return frames
    spread = [float(frame[::4, ::4].std()) for frame in frames]
    return frames[sorted(np.argsort(spread)[-count:])]


class QualityCheck:
    """Lowest PSNR of a precision's output against fp32's over the job's sampled frames (read on
    first use: a job whose candidates are all too slow never decodes them). Keeps every model it
    builds, so the one chosen runs the job without being built twice."""

    def __init__(self, build: Callable[[str], Stylizer], sample: Callable[[], np.ndarray]) -> None:
        self.build, self.sample = build, sample
        self.stylizers: dict[str, Stylizer] = {}
        self.frames: np.ndarray | None = None
        self._reference: list[np.ndarray] | None = None

    @property
    def frames_checked(self) -> int:
        return 0 if self.frames is None else len(self.frames)

    def stylizer(self, precision: str) -> Stylizer:
        if precision not in self.stylizers:
            self.stylizers[precision] = self.build(precision)
        return self.stylizers[precision]

    def _styled(self, precision: str) -> list[np.ndarray]:
        model = self.stylizer(precision)
        return [model(frame[None]) for frame in self.frames]

    def __call__(self, precision: str) -> float:
        if self.frames is None:
            self.frames = most_detailed(self.sample())
        if not len(self.frames):
            raise ValueError("no frames could be read to compare")
        if self._reference is None:
            self._reference = self._styled("fp32")
        return min(psnr(ours, reference, 255) for ours, reference in
                   zip(self._styled(precision), self._reference, strict=True))


def stylizer_for(style: Style, device: str = "auto", batch_size: int | None = None, precision: str = "auto", *,
                 sample: Callable[[], np.ndarray], style_root: Path | None = None, timer: Timer | None = None,
                 cache_file: Path | None = None) -> tuple[Stylizer, FastChoice | None]:
    """The job's model. Under `fast` on CPU, chosen by the gate on the frames `sample()` returns
    (the job's first frames at its output size)."""

    def build(name: str) -> Stylizer:
        return Stylizer(style, choose_device(device, batch_size, name), style_root=style_root)

    resolved = choose_device(device, batch_size, "auto")  # validates the device; tells CPU from CUDA
    if precision != "fast" or resolved.device.type != "cpu":
        return build(precision), None
    support = cpu_support()
    seconds = machine_seconds([name for name in REDUCED_CPU_PRECISIONS if support[name]], timer, cache_file)
    check = QualityCheck(build, sample)
    name, verdicts = gate(seconds, check, [name for name in REDUCED_CPU_PRECISIONS if not support[name]])
    choice = FastChoice(name, tuple(verdicts), check.frames_checked, machine_key())
    log.info(choice.summary())
    return check.stylizer(name), choice
