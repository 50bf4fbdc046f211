"""Temporal stability benchmark: flicker (E_warp) of per-frame vs stabilised output, fidelity beside it.

    .venv/bin/python -m bench.temporal            # full run (about 30 min on 2 busy cores)
    .venv/bin/python -m bench.temporal --quick    # smoke: 256x144, 24 frames, one alpha (temporal_quick.json)
    .venv/bin/python -m bench.temporal --clip bigbuckbunny.mp4:1280x720   # re-measure one clip, keep the rest

For each clip (bigbuckbunny at 640x360 and 1280x720, bikes.mp4 at 640x272 with its hard cuts):
1. the frames are cut into segments exactly where the job's own planner cuts them
   (activities.media.segment_plan with the default settings), stored lossless (FFV1) so that nothing but
   the cut differs from the source;
2. the real scoring job (scoring_job.score.run, one rank, CPU, default encode) stylizes them with
   style 19 twice: `stability` 0 (per-frame, today's output) and the default stability, each
   segment after the first with its warm-up from the one before;
3. the outputs are decoded and scored with bench/temporal_metric.py against Farneback flow of the
   originals: ewarp_reduction, sharpness_ratio, psnr_vs_per_frame, boundary_ratio (seam pairs over
   interior pairs of the stabilised output), and the time the filter adds per frame (with the load
   average: the machine is shared, so timings are only comparable within one run).
An alpha sweep on the 360p clips (frames styled once in memory, filtered at each alpha, no
encode) shows the trade-off the default is chosen from. Also written: a side-by-side clip
(per-frame | stabilised) and a plot of per-pair E_warp over time, both in bench/results/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageDraw

from activities.media.segment_plan import Packet, plan_segments, target_segment_seconds
from bench.report import BenchReport
from bench.temporal_metric import clip_flows, ewarp_series, mean_ewarp, psnr, sharpness
from restyle.settings import Settings
from scoring_job.engine import Stylizer, choose_device, to_frames
from scoring_job.ffmpeg_binary import ffmpeg_binary
from scoring_job.manifest import DEFAULT_STABILITY, Manifest, Segment
from scoring_job.probe import probe_video
from scoring_job.score import Rank, result_paths, run
from scoring_job.spanning import join_pieces
from scoring_job.style_spec import parse_style
from scoring_job.temporal import MotionEstimator, TemporalFilter, warmup_frames
from scoring_job.video_io import FrameReader
from tools.footage import bundled_clip

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STYLE = "19"
# (clip, size, alpha sweep?, timed?): the sweep styles the clip once more in memory; timing adds a run.
CLIPS = (("bigbuckbunny.mp4", (640, 360), True, False), ("bikes.mp4", (640, 272), True, False),
         ("bigbuckbunny.mp4", (1280, 720), False, True))
QUICK_CLIPS = (("bigbuckbunny.mp4", (256, 144), True, True),)  # the smoke run: every step, tiny
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7)
TARGETS = {"ewarp_reduction": 0.60, "sharpness_ratio": 0.65, "psnr_vs_per_frame": 25.0, "boundary_ratio": 1.05,
           "overhead_s_per_frame_720p": 0.12}


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run([ffmpeg_binary(), "-nostdin", "-v", "error", "-y", *map(str, args)], check=True)


def decode_frames(path: Path) -> list[np.ndarray]:
    info = probe_video(path)
    return [frame for batch in FrameReader(path, info, (info.width, info.height)).batches(16) for frame in batch]


def planned_cuts(source: Path) -> list[int]:
    """Segment start frames as the job plans them for this upload (default settings)."""
    settings = Settings()
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        packets = [Packet(p.pts, p.dts, p.is_keyframe) for p in container.demux(stream) if p.pts is not None]
        duration = float(stream.duration * stream.time_base) if stream.duration else float(container.duration) / 1e6
        time_base = float(stream.time_base)
    target = target_segment_seconds(duration, settings.segment_seconds, settings.scoring_workers,
                                    settings.segments_per_worker)
    plan = plan_segments(packets, time_base, target, duration)
    return [segment.start_frame for segment in plan.segments[1:]]


def lossless_frames(name: str, size: tuple[int, int], frames: int | None, folder: Path) -> Path:
    path = folder / "whole.mkv"
    limit = ["-frames:v", str(frames)] if frames else []
    _ffmpeg("-i", bundled_clip(name), "-vf", f"scale={size[0]}:{size[1]}:flags=lanczos", *limit, "-an",
            "-c:v", "ffv1", path)
    return path


def write_job(folder: Path, whole: Path, cuts: list[int], total: int, options: dict) -> Manifest:
    """A scoring job's input folder: `whole` cut losslessly (FFV1) into segments starting at `cuts`."""
    (folder / "segments").mkdir(parents=True, exist_ok=True)
    edges = [0, *cuts, total]
    segments = []
    for index, (first, last) in enumerate(itertools.pairwise(edges)):
        path = f"segments/{index:03d}.mkv"
        _ffmpeg("-i", whole, "-vf", f"select=between(n\\,{first}\\,{last - 1})", "-fps_mode", "passthrough",
                "-c:v", "ffv1", folder / path)
        segments.append(Segment(index=index, path=path, frames=last - first))
    fps = probe_video(whole).fps
    manifest = Manifest(job_id="bench", fps=f"{fps.numerator}/{fps.denominator}", style=STYLE, segments=segments,
                        options=options)
    manifest.save(folder)
    return manifest


def run_job(folder: Path, manifest: Manifest) -> tuple[list[np.ndarray], float]:
    """Styled frames of the whole video and the job's seconds (sum over segments)."""
    output = folder / "out"
    if run(folder, output, Rank(0, 1, 0), device="cpu"):
        raise RuntimeError("the scoring job failed")
    videos = [result_paths(output, segment)[0] for segment in manifest.segments]
    seconds = sum(json.loads(result_paths(output, segment)[1].read_text())["seconds"] for segment in manifest.segments)
    return decode_frames(join_pieces(videos, folder / "joined.mp4")), seconds


def sweep(originals: list[np.ndarray], flows, alphas) -> dict:
    """Per-frame styling once, then the filter at each alpha (in memory, no encode)."""
    stylizer = Stylizer(parse_style(STYLE), choose_device("cpu"))
    styled = [stylizer.styled(frame[None])[0] for frame in originals]
    per_frame = [to_frames(s[None])[0] for s in styled]
    base, base_sharp = mean_ewarp(ewarp_series(per_frame, flows)), sharpness(per_frame)
    rows = {}
    for alpha in alphas:
        motion, blend = MotionEstimator(), TemporalFilter(alpha, torch.device("cpu"))
        with torch.inference_mode():
            out = [to_frames(blend(s, motion(f))[None])[0] for s, f in zip(styled, originals, strict=True)]
        rows[str(alpha)] = {"ewarp_reduction": round(1 - mean_ewarp(ewarp_series(out, flows)) / base, 3),
                            "sharpness_ratio": round(sharpness(out) / base_sharp, 3),
                            "psnr_vs_per_frame": round(psnr(per_frame, out), 2)}
        print(f"  sweep alpha {alpha}: {rows[str(alpha)]}", flush=True)
    return rows


def measure_clip(name: str, size: tuple[int, int], frames: int | None, stability: float, alphas,
                 timed: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="temporal-") as scratch:
        folder = Path(scratch)
        whole = lossless_frames(name, size, frames, folder)
        originals = decode_frames(whole)
        cuts = [cut for cut in planned_cuts(bundled_clip(name)) if cut < len(originals)]
        started = time.perf_counter()
        flows = clip_flows(originals)
        print(f"{name} {size[0]}x{size[1]}: {len(originals)} frames, segments start at {cuts}, flows "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        load_before = os.getloadavg()
        # Both cut where the job cuts: each segment's encode starts with a keyframe, and the planner cuts at the
        # source's keyframes, so seams differ from interior pairs even per frame; boundary_ratio is read against
        # per_frame_boundary_ratio. The filter's own cost is timed on one segment (no warm-up).
        jobs = [("per_frame", cuts, 0.0), ("stabilised", cuts, stability)]
        if timed:
            jobs.append(("stabilised_one_segment", [], stability))
        runs = {}
        for label, job_cuts, alpha in jobs:
            options = {"compile": False, "stability": alpha}
            runs[label] = run_job(folder / label, write_job(folder / label, whole, job_cuts, len(originals), options))
        load_after = os.getloadavg()
        (per_frame, per_seconds), (stable, stable_seconds) = runs["per_frame"], runs["stabilised"]
        per_series, stable_series = ewarp_series(per_frame, flows), ewarp_series(stable, flows)
        # A seam pair the metric skips as a scene cut says nothing about seams (bikes: the planner cuts at the
        # source's keyframes, which its encoder put at the scene cuts).
        seams = [cut - 1 for cut in cuts if stable_series[cut - 1] is not None and per_series[cut - 1] is not None]
        interior = [i for i in range(len(stable_series)) if i not in seams]
        result = {
            "clip": name, "width": size[0], "height": size[1], "frames": len(originals), "segment_starts": cuts,
            "stability": stability, "cut_pairs_skipped": sum(value is None for value in stable_series),
            "seam_pairs_measured": len(seams),
            "source_ewarp": mean_ewarp(ewarp_series(originals, flows)),
            "per_frame_ewarp": mean_ewarp(per_series), "stabilised_ewarp": mean_ewarp(stable_series),
            "ewarp_reduction": round(1 - mean_ewarp(stable_series) / mean_ewarp(per_series), 3),
            "sharpness_ratio": round(sharpness(stable) / sharpness(per_frame), 3),
            "psnr_vs_per_frame": round(psnr(per_frame, stable), 2),
            "boundary_ratio": round(mean_ewarp(stable_series, seams) / mean_ewarp(stable_series, interior), 3)
            if seams else None,
            "per_frame_boundary_ratio": round(mean_ewarp(per_series, seams) / mean_ewarp(per_series, interior), 3)
            if seams else None,
            "seam_ewarp_reduction": round(1 - mean_ewarp(stable_series, seams) / mean_ewarp(per_series, seams), 3)
            if seams else None,
            "seconds_per_frame": {label: round(seconds / len(originals), 4) for label, (_, seconds) in runs.items()},
            "warmup_frames_run": sum(min(warmup_frames(stability), b - a) for a, b in itertools.pairwise([0, *cuts])),
            "load_average": {"before": [round(v, 2) for v in load_before], "after": [round(v, 2) for v in load_after]},
            "series": {"per_frame": per_series, "stabilised": stable_series},
        }
        if timed:
            one_segment = runs["stabilised_one_segment"][1]
            result["overhead_s_per_frame"] = round((one_segment - per_seconds) / len(originals), 4)
            result["warmup_s_per_frame"] = round((stable_seconds - one_segment) / len(originals), 4)
        if alphas:
            result["sweep"] = sweep(originals, flows, alphas)
        result["_frames"] = (per_frame, stable)
        return result


def side_by_side(per_frame: list[np.ndarray], stable: list[np.ndarray], fps: str, path: Path) -> int:
    """per-frame | stabilised, H.264; returns the file size in bytes."""
    height, width = per_frame[0].shape[:2]
    process = subprocess.Popen(
        [ffmpeg_binary(), "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
         f"{2 * width}x{height}", "-framerate", fps, "-i", "-", "-c:v", "libx264", "-crf", "30", "-preset", "slow",
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)], stdin=subprocess.PIPE)
    for left, right in zip(per_frame, stable, strict=True):
        process.stdin.write(np.concatenate([left, right], axis=1).tobytes())
    process.stdin.close()
    if process.wait():
        raise RuntimeError("ffmpeg failed writing the side-by-side clip")
    return path.stat().st_size


def plot(panels: list[tuple[str, dict]], path: Path) -> None:
    """Per-pair E_warp over time, per-frame (red) and stabilised (blue), one panel per clip (PIL)."""
    width, panel_height, margin = 900, 220, 50
    image = Image.new("RGB", (width, panel_height * len(panels) + 20), "white")
    draw = ImageDraw.Draw(image)
    for row, (title, series) in enumerate(panels):
        top = row * panel_height + 30
        plot_w, plot_h = width - 2 * margin, panel_height - 70
        values = [v for s in series.values() for v in s if v is not None]
        peak = max(values) * 1.05
        draw.text((margin, top - 22), f"{title}: per-pair E_warp (per-frame red, stabilised blue; gaps = cuts)",
                  fill="black")
        draw.rectangle([margin, top, margin + plot_w, top + plot_h], outline="grey")
        draw.text((4, top - 4), f"{peak:.3f}", fill="black")
        draw.text((4, top + plot_h - 8), "0", fill="black")
        for colour, values_ in (("red", series["per_frame"]), ("blue", series["stabilised"])):
            count = len(values_)
            points: list[tuple[float, float]] = []
            for i, value in enumerate(values_):
                if value is None:
                    if len(points) > 1:
                        draw.line(points, fill=colour, width=2)
                    points = []
                    continue
                points.append((margin + plot_w * i / max(count - 1, 1), top + plot_h - plot_h * value / peak))
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
        draw.text((margin, top + plot_h + 4), f"frame pair 0 .. {len(series['per_frame']) - 1}", fill="black")
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 256x144, 24 frames, one alpha")
    parser.add_argument("--output", type=Path, help="results JSON; the clip, crop and plot go beside it")
    parser.add_argument("--stability", type=float, default=DEFAULT_STABILITY, help="alpha of the stabilised runs")
    parser.add_argument("--clip", nargs="+", help="re-measure only these, e.g. bigbuckbunny.mp4:1280x720; "
                        "the other clips' results in the JSON are kept")
    parser.add_argument("--alphas", type=float, nargs="+", help=f"alpha sweep (default {' '.join(map(str, SWEEP))})")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    known = QUICK_CLIPS if args.quick else CLIPS
    frames = 24 if args.quick else None  # one seam (the bundled clip's keyframe at 22)
    alphas = args.alphas or ((0.5,) if args.quick else SWEEP)
    clips = tuple(clip for clip in known if not args.clip or f"{clip[0]}:{clip[1][0]}x{clip[1][1]}" in args.clip)
    out = args.output or RESULTS / ("temporal_quick.json" if args.quick else "temporal.json")
    suffix = "_quick" if args.quick else ""
    # Re-measuring some clips keeps the others' results (e.g. timing re-run on a quiet machine).
    kept = json.loads(out.read_text())["clips"] if args.clip and out.is_file() else []
    results = [r for r in kept if not any((r["clip"], (r["width"], r["height"])) == clip[:2] for clip in clips)]
    report = BenchReport(out, "temporal", style=STYLE, stability=args.stability, quick=args.quick, targets=TARGETS,
                         torch_threads=torch.get_num_threads(), clips=results)
    for name, size, swept, timed in clips:
        with report.part(f"{name}:{size[0]}x{size[1]}"):
            result = measure_clip(name, size, frames, args.stability, alphas if swept else (), timed)
            per_frame, stable = result.pop("_frames")
            if (name, size) == known[0][:2]:
                fps = probe_video(bundled_clip(name)).fps
                side = out.with_name(f"temporal_side_by_side{suffix}.mp4")
                result["side_by_side"] = {"path": str(side.relative_to(ROOT) if side.is_relative_to(ROOT) else side),
                                          "bytes": side_by_side(
                    per_frame, stable, f"{fps.numerator}/{fps.denominator}", side)}
                crop = np.concatenate([per_frame[60 % len(per_frame)][100:300, 180:460],
                                       stable[60 % len(stable)][100:300, 180:460]], axis=1)
                Image.fromarray(crop).save(out.with_name(f"temporal_crop{suffix}.png"))
            summary = {k: v for k, v in result.items() if k not in ("series", "sweep")}
            print(json.dumps(summary), flush=True)
            results.append(result)
            results.sort(key=lambda r: [c[:2] for c in known].index((r["clip"], (r["width"], r["height"]))))
            update_report(report, results, out.with_name(f"temporal_ewarp{suffix}.png"))
    return 0


def update_report(report: BenchReport, results: list[dict], plot_path: Path) -> None:
    """Written after every clip, so that a long run that is stopped keeps what it measured."""
    plot([(f"{r['clip']} {r['width']}x{r['height']}", r["series"]) for r in results], plot_path)
    timed = [r for r in results if "overhead_s_per_frame" in r]
    report.update({"overhead_s_per_frame_720p": timed[0]["overhead_s_per_frame"] if timed else None,
                   "warmup_s_per_frame_720p": timed[0]["warmup_s_per_frame"] if timed else None,
                   "timed_size": f"{timed[0]['width']}x{timed[0]['height']}" if timed else None, "clips": results})
    report.write()
    print(f"wrote {report.path}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
