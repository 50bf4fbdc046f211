"""The measurements of the GPU check (bench/gpu.py), one part per process.

    python bench/gpu_parts.py PART CONTEXT_JSON RESULT_JSON      (bench/gpu.py starts these)

Each part reads the plan from CONTEXT_JSON and rewrites RESULT_JSON after every figure, so a part
stopped at its time limit still hands back what it measured. A figure that cannot be taken is a
record with `skipped` (the reason) instead of its numbers; nothing here makes up a figure.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STYLE = "19"  # the style bench/scoring.py times
MODES = (("cpu", "libx264"), ("nvdec", "libx264"), ("cpu", "h264_nvenc"), ("nvdec", "h264_nvenc"))
NVENC_PRESET = "p4"  # NVENC's middle preset: the speed/quality point comparable to x264 "veryfast"
FPS = 25  # the bundled clip's rate; generated clips use it too
DRIVER_LIBRARIES = ("libcuda.so.1", "libnvcuvid.so.1", "libnvidia-encode.so.1")  # CUDA, NVDEC, NVENC


def size_text(size: list[int] | tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"[:400]


class Recorder:
    """The part's result file, rewritten whole after each change (atomic rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {"records": []}
        self.save()

    def add(self, record: dict) -> None:
        self.data["records"].append(record)
        print(json.dumps(record), flush=True)
        self.save()

    def set(self, key: str, value: object) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(self.data, indent=2))
        os.replace(partial, self.path)


def measured(record: dict, action: Callable[[], dict], recorder: Recorder) -> dict:
    """Add `record` with the figures `action` returns, or with the reason it could not."""
    try:
        figures = action()
    except Exception as error:  # noqa: BLE001 - any failure is this figure's skip reason
        figures = {"skipped": _reason(error)}
    result = {**record, **figures}
    recorder.add(result)
    return result


# --- ffmpeg -------------------------------------------------------------------------------------


def run_ffmpeg(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    from scoring_job.ffmpeg_binary import ffmpeg_binary

    return subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


def ffmpeg_failure(result: subprocess.CompletedProcess) -> str | None:
    """None when ffmpeg succeeded, else its first error lines (they name the cause: a library, a device)."""
    if result.returncode == 0:
        return None
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    return f"ffmpeg exit {result.returncode}: " + " | ".join(lines[:3])[:400]


def make_clip(path: Path, size: tuple[int, int], frames: int) -> str:
    """`frames` frames at `size` and 25 fps with AAC audio: the bundled bigbuckbunny looped and scaled
    (real footage), or ffmpeg's testsrc2 where the bundled clip is missing. Returns what was used."""
    from tools.footage import bundled_clip

    seconds = f"{frames / FPS:.3f}"
    try:
        source = ["-stream_loop", "-1", "-i", str(bundled_clip())]
        used = "bigbuckbunny.mp4 (bundled), looped and scaled"
        scale = ["-vf", f"scale={size[0]}:{size[1]}:flags=lanczos"]
    except FileNotFoundError as error:
        source = ["-f", "lavfi", "-i", f"testsrc2=size={size_text(size)}:rate={FPS}",
                  "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
        used = f"lavfi testsrc2 ({error})"
        scale = []
    result = run_ffmpeg(["-loglevel", "error", "-y", *source, *scale, "-t", seconds, "-r", str(FPS),
                         "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                         "-c:a", "aac", str(path)])
    problem = ffmpeg_failure(result)
    if problem:
        raise RuntimeError(f"could not make the {size_text(size)} clip: {problem}")
    return used


def hardware_video(work: Path, size: tuple[int, int]) -> dict[str, dict]:
    """Can the bundled ffmpeg decode with NVDEC and encode with NVENC here? Tried for real, briefly:
    the listing (-encoders, -hwaccels) says only what the binary was built with, not what the GPU,
    the driver's libraries and the container allow (an H100/H200 has NVDEC but no NVENC)."""
    clip = work / "preflight.mp4"
    make_clip(clip, size, 10)
    decode = run_ffmpeg(["-loglevel", "error", "-hwaccel", "cuda", "-hwaccel_output_format", "cuda",
                         "-i", str(clip), "-f", "null", "-"], timeout=60)
    encode = run_ffmpeg(["-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=size={size_text(size)}:rate={FPS}",
                         "-frames:v", "10", "-c:v", "h264_nvenc", "-preset", NVENC_PRESET, "-f", "null", "-"],
                        timeout=60)
    return {name: ({"available": True} if problem is None else {"available": False, "reason": problem})
            for name, problem in (("nvdec", ffmpeg_failure(decode)), ("nvenc", ffmpeg_failure(encode)))}


# --- parts --------------------------------------------------------------------------------------


def part_environment(context: dict, recorder: Recorder) -> None:
    """What the figures were measured on, and which hardware video paths work."""
    import torch

    facts: dict = {"python": platform.python_version(), "python_executable": sys.executable,
                   "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
                   "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        facts.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2**30, 1),
                     multiprocessors=properties.multi_processor_count,
                     compute_capability=f"{properties.major}.{properties.minor}",
                     bf16_supported=torch.cuda.is_bf16_supported(), cudnn=torch.backends.cudnn.version())
    facts["nvidia_smi"] = _nvidia_smi()
    facts["driver_libraries"] = {name: _loadable(name) for name in DRIVER_LIBRARIES}
    recorder.set("facts", facts)
    recorder.set("ffmpeg", _ffmpeg_facts())
    size = tuple(context["plan"]["sizes"][0])
    try:
        recorder.set("hardware_video", hardware_video(Path(context["work"]), size))
    except Exception as error:  # noqa: BLE001 - no ffmpeg at all: both paths are unavailable, for this reason
        reason = _reason(error)
        recorder.set("hardware_video", {name: {"available": False, "reason": reason} for name in ("nvdec", "nvenc")})


def _nvidia_smi() -> str:
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                                 "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"not run: {_reason(error)}"
    return (result.stdout or result.stderr).strip()[:400]


def _loadable(name: str) -> bool | str:
    """True when the dynamic loader finds `name` as ffmpeg's dlopen will, else the loader's message."""
    try:
        ctypes.CDLL(name)
    except OSError as error:
        return str(error)[:200]
    return True


def _ffmpeg_facts() -> dict:
    try:
        from scoring_job.ffmpeg_binary import ffmpeg_binary

        binary = ffmpeg_binary()
        version = run_ffmpeg(["-version"], timeout=30).stdout.splitlines()[0]
        encoders = run_ffmpeg(["-encoders"], timeout=30).stdout
        hwaccels = run_ffmpeg(["-hwaccels"], timeout=30).stdout.split()
    except Exception as error:  # noqa: BLE001 - reported as the reason there is no ffmpeg
        return {"error": _reason(error)}
    return {"path": binary, "version": version, "lists_h264_nvenc": " h264_nvenc " in encoders,
            "lists_cuda_hwaccel": "cuda" in hwaccels}


def _frames(size: tuple[int, int], count: int) -> tuple[object, str]:
    """`count` real frames (the bundled clip decoded at `size`); synthetic ones only where the video
    packages are missing, so that the model figures do not depend on them (frame content does not
    change the model's work)."""
    import numpy as np

    try:
        from scoring_job.probe import probe_video
        from scoring_job.video_io import FrameReader
        from tools.footage import bundled_clip

        clip = bundled_clip()
        reader = FrameReader(clip, probe_video(clip), size)
        batches: list = []
        for batch in reader.batches(16):  # no more of the clip than needed (1080p frames are 6 MB each)
            batches.append(batch)
            if sum(map(len, batches)) >= count:
                break
        reader.close()
        frames = np.concatenate(batches)[:count]
        return np.concatenate([frames] * -(-count // len(frames)))[:count], "bigbuckbunny.mp4 (bundled)"
    except Exception as error:  # noqa: BLE001 - recorded beside the figures
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (count, size[1], size[0], 3), dtype=np.uint8), f"random ({_reason(error)})"


def model_fps(stylizer, frames, seconds: float) -> dict:
    """Stylizer fps on frames already in host memory, as the pipeline calls it (uint8 in and out, so
    the host<->device copies count); at least two batches and `seconds` of timed work."""
    batch = stylizer.config.batch_size
    stylizer(frames[:batch])
    stylizer(frames[:batch])  # warm-up: allocator, cuDNN algorithm choice
    done, started = 0, time.perf_counter()
    while done < 2 * batch or time.perf_counter() - started < seconds:
        start = done % (len(frames) - batch + 1)
        stylizer(frames[start:start + batch])
        done += batch
    elapsed = time.perf_counter() - started
    return {"fps": round(done / elapsed, 3), "frames": done, "seconds": round(elapsed, 3)}


def _stylizer(plan: dict, precision: str | None = None, batch: int | None = None, compile_model: bool = False):
    from scoring_job.engine import Stylizer, choose_device
    from scoring_job.style_spec import parse_style

    config = choose_device(plan["device"], batch, precision or "auto")
    return Stylizer(parse_style(STYLE), config, compile_model=compile_model)


def part_model(context: dict, recorder: Recorder) -> None:
    """Model fps for each precision, size and batch size."""
    plan = context["plan"]
    for width, height in plan["sizes"]:
        frames, source = _frames((width, height), 2 * max(plan["batches"]))
        recorder.set(f"frames_{width}x{height}", source)
        for precision in plan["precisions"]:
            for batch in plan["batches"]:
                point = partial(_model_point, plan, precision, batch, frames)
                measured({"precision": precision, "size": f"{width}x{height}", "batch": batch}, point, recorder)


def _model_point(plan: dict, precision: str, batch: int, frames) -> dict:
    return model_fps(_stylizer(plan, precision, batch), frames, plan["seconds_per_point"])


def part_compiled(context: dict, recorder: Recorder) -> None:
    """torch.compile at the pipeline's default precision and batch: compile time and fps."""
    plan = context["plan"]
    size = tuple(plan["sizes"][0])

    def compiled() -> dict:
        failures = _CompileFailures()
        logging.getLogger("scoring_job.engine").addHandler(failures)
        stylizer = _stylizer(plan, compile_model=True)
        frames, _ = _frames(size, 2 * stylizer.config.batch_size)
        started = time.perf_counter()
        stylizer(frames[:stylizer.config.batch_size])
        compile_s = time.perf_counter() - started
        if failures.messages:
            raise RuntimeError(f"torch.compile failed, the model ran eagerly: {failures.messages[0]}")
        eager = model_fps(_stylizer(plan), frames, plan["seconds_per_point"])["fps"]
        figures = model_fps(stylizer, frames, plan["seconds_per_point"])
        return {"device": stylizer.device_name, "batch": stylizer.config.batch_size,
                "compile_s": round(compile_s, 1), **figures, "eager_fps": eager,
                "speedup": round(figures["fps"] / eager, 3)}

    measured({"size": size_text(size)}, compiled, recorder)


class _CompileFailures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "torch.compile failed" in record.getMessage():
            self.messages.append(record.getMessage())


def part_pipeline(context: dict, recorder: Recorder) -> None:
    """stylize_segment fps ÷ model-alone fps for each decode/encode mode at one size."""
    from scoring_job.pipeline import stylize_segment
    from scoring_job.probe import probe_video
    from scoring_job.video_io import FrameReader

    plan, size = context["plan"], tuple(context["size"])
    work = Path(tempfile.mkdtemp(prefix=f"gpu-pipeline-{size_text(size)}-", dir=context["work"]))
    stylizer = _stylizer(plan)  # first: without the device there is nothing to time
    clip = work / "clip.mp4"
    recorder.set("footage", make_clip(clip, size, plan["clip_frames"]))
    info = probe_video(clip)
    reader = FrameReader(clip, info, size)
    frames = next(reader.batches(2 * stylizer.config.batch_size))
    reader.close()
    before = model_fps(stylizer, frames, plan["seconds_per_point"])["fps"]
    for decode, encode in MODES:
        record = {"size": size_text(size), "decode": decode, "encode": encode, "device": stylizer.device_name}
        unavailable = _unavailable(context, decode, encode)
        if unavailable:
            recorder.add({**record, "skipped": unavailable})
            continue

        def run(decode: str = decode, encode: str = encode) -> dict:
            from scoring_job.video_io import EncodeOptions

            options = EncodeOptions(preset=NVENC_PRESET, codec=encode) if encode == "h264_nvenc" else EncodeOptions()
            out = work / f"{decode}-{encode}.mp4"
            result = stylize_segment(clip, out, stylizer, encode=options, copy_audio=True, info=info,
                                     hwaccel="cuda" if decode == "nvdec" else None)
            kbit_s = out.stat().st_size * 8 / 1000 / (result.frames / FPS)
            out.unlink()
            return {"frames": result.frames, "pipeline_fps": round(result.fps, 3), "output_kbit_s": round(kbit_s)}

        measured(record, run, recorder)
        _efficiency(recorder, before)  # complete now, should the part be stopped before the end
    after = model_fps(stylizer, frames, plan["seconds_per_point"])["fps"]
    recorder.set("model_fps_before_after", [before, after])
    _efficiency(recorder, (before + after) / 2)  # bracketing the runs evens out drift, as bench/scoring.py does


def _efficiency(recorder: Recorder, model: float) -> None:
    for record in recorder.data["records"]:
        if "pipeline_fps" in record:
            record.update(model_fps=round(model, 3), efficiency=round(record["pipeline_fps"] / model, 3))
    recorder.save()


def _unavailable(context: dict, decode: str, encode: str) -> str | None:
    """Why a mode cannot be measured here (its hardware path failed its preflight, or a dry run), or None."""
    hardware = context.get("hardware_video", {})
    for name, wanted in (("nvdec", decode == "nvdec"), ("nvenc", encode == "h264_nvenc")):
        if not wanted:
            continue
        facts = hardware.get(name, {"available": False, "reason": "not checked (the environment part did not run)"})
        if not facts.get("available"):
            return f"{name} unavailable: {facts.get('reason')}"
        if context["plan"]["dry_run"]:
            return f"{name}: a dry run measures only the CPU paths"
    return None


PARTS: dict[str, Callable[[dict, Recorder], None]] = {
    "environment": part_environment, "model": part_model, "pipeline": part_pipeline, "compiled": part_compiled,
}


def main() -> None:
    name, context_path, result_path = sys.argv[1:4]
    context = json.loads(Path(context_path).read_text())
    if context["plan"]["dry_run"]:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # a dry run is CPU only, on any machine
        # one thread: on a busy shared CPU a parallel region waits for its slowest thread (seconds)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    PARTS[name](context, Recorder(Path(result_path)))


if __name__ == "__main__":
    main()
