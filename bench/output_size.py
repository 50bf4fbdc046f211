"""Output size at a quality target: today's fixed CRF 18 against the per-job `quality` search, side by side.

    .venv/bin/python bench/output_size.py            # full run (bench/results/output_size.json)
    .venv/bin/python bench/output_size.py --quick    # smoke: tiny frames, few of them

For each source (the bundled clip; a longer clip made by looping it; the bundled clip re-encoded at
CRF 6 with its keyframes where they were, so that they do not pulse; a 10-bit HEVC and an HDR10 HEVC
made from it with libx265), cut where the job's planner cuts it, the real scoring job
(scoring_job.score.run, style 19, one CPU rank, stability on) runs three times: crf 0 (the lossless
reference), crf 18 and the default quality target. One rank's consecutive segments go through one
encoder (scoring_job/spanning.py). `per_segment`: the lossless run's frames encoded the way every job
was before, one x264 encoder (B-frames on) per segment at CRF 18, side by side in the same run.
Reported per source and setting: output bitrate (segments' bytes over the duration) against the
source's (scaled by pixels to the output size), VMAF against the lossless run, boundary_ratio (seam
flicker over interior flicker, bench/temporal_metric.py), and encode seconds per frame (the styled
frames re-encoded alone: per segment with B-frames at CRF 18, against one encoder without B-frames
at the searched CRF plus the search's time spread over the frames). `source_boundary_ratio`: the
same ratio for the source frames; `seam_excess`: each run's ratio over that of `one_pass`, the same
frames styled as one segment (no seam at all): the content's own flicker at those frames is in
every ratio, and only the excess over it is the seams'.
Every source is styled from an 8-bit lossless copy at the output size, and so encoded as 8-bit
H.264: the HEVC sources vary the content and its source bitrate, not the encoder (the x265 path's
seams and format are tested in tests/test_media_formats.py).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.report import BenchReport, quick_path  # noqa: E402
from bench.temporal import _ffmpeg, decode_frames, planned_cuts, run_job, write_job  # noqa: E402
from bench.temporal_metric import clip_flows, ewarp_series, mean_ewarp  # noqa: E402
from scoring_job.manifest import DEFAULT_QUALITY, DEFAULT_STABILITY  # noqa: E402
from scoring_job.probe import probe_video  # noqa: E402
from scoring_job.quality_target import choose_crf, encode_frames, vmaf  # noqa: E402
from scoring_job.score import result_paths  # noqa: E402
from scoring_job.spanning import join_pieces  # noqa: E402
from scoring_job.video_io import EncodeOptions  # noqa: E402
from tools.footage import bundled_clip  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "output_size.json"
TARGETS = {"bitrate_vs_source": 2.0, "encode_time_ratio": 1.3, "boundary_ratio": 1.15, "seam_excess": 1.15,
           "vmaf": DEFAULT_QUALITY}
HDR10 = ("colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:"
         "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1):max-cll=1000,400")
# name -> ffmpeg arguments that make the source from the bundled clip
SOURCES = {
    "bundled": None,
    "looped_30s": ["-stream_loop", "-1", "-i", "{clip}", "-t", "30", "-an", "-c:v", "libx264", "-preset",
                   "veryfast", "-crf", "23"],
    # the bundled clip's keyframes (every 22 frames), at a quality that leaves them no pulse of their own
    "clean_keyframes": ["-i", "{clip}", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "6", "-g", "22",
                        "-keyint_min", "22", "-sc_threshold", "0"],
    "hevc_10bit": ["-i", "{clip}", "-an", "-c:v", "libx265", "-preset", "fast", "-pix_fmt", "yuv420p10le",
                   "-x265-params", "log-level=error"],
    "hdr10": ["-i", "{clip}", "-an", "-c:v", "libx265", "-preset", "fast", "-pix_fmt", "yuv420p10le",
              "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
              "-x265-params", f"log-level=error:{HDR10}"],
}


def make_source(name: str, folder: Path) -> Path:
    clip = bundled_clip("bigbuckbunny.mp4")
    if SOURCES[name] is None:
        return clip
    path = folder / f"{name}.mp4"
    _ffmpeg(*[arg.replace("{clip}", str(clip)) for arg in SOURCES[name]], path)
    return path


def processing_input(source: Path, size: tuple[int, int], frames: int, folder: Path) -> Path:
    """The source's first `frames` frames at the processing size, lossless (the job's segments are cut from it)."""
    path = folder / "whole.mkv"
    _ffmpeg("-i", source, "-vf", f"scale={size[0]}:{size[1]}:flags=lanczos", "-frames:v", str(frames), "-an",
            "-pix_fmt", "yuv420p", "-c:v", "ffv1", path)
    return path


def job_kbps(folder: Path, manifest, seconds: float) -> float:
    total = sum(result_paths(folder / "out", segment)[0].stat().st_size for segment in manifest.segments)
    return total * 8 / 1000 / seconds


def boundary_ratio(series: list[float | None], cuts: list[int]) -> float | None:
    seams = [cut - 1 for cut in cuts if series[cut - 1] is not None]
    interior = [i for i in range(len(series)) if i not in seams]
    return round(mean_ewarp(series, seams) / mean_ewarp(series, interior), 3) if seams else None


def per_segment(styled: np.ndarray, cuts: list[int], fps: str, crf: int, folder: Path) -> tuple[list[Path], float]:
    """The styled frames through one x264 encoder per segment (B-frames on): every job before one
    encoder spanned seams. Returns the segment files and the encode seconds."""
    edges = [0, *cuts, len(styled)]
    started = time.perf_counter()
    paths = [encode_frames(styled[start:end], folder / f"alone{crf}_{number:03d}.mp4", fps, EncodeOptions(crf=crf))
             for number, (start, end) in enumerate(itertools.pairwise(edges))]
    return paths, time.perf_counter() - started


def spanning_seconds(styled: np.ndarray, fps: str, crf: int, folder: Path) -> float:
    started = time.perf_counter()
    encode_frames(styled, folder / f"spanning{crf}.mp4", fps, EncodeOptions(crf=crf, reorder=False))
    return time.perf_counter() - started


def scored(frames: list[np.ndarray], reference: Path, fps: str, folder: Path, label: str) -> float:
    lossless = EncodeOptions(crf=0, preset="ultrafast")
    test = encode_frames(np.stack(frames), folder / f"{label}_decoded.mp4", fps, lossless)
    return round(vmaf(reference, test, subsample=1), 2)


def measure(name: str, size: tuple[int, int], frames: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="output-size-") as scratch:
        folder = Path(scratch)
        source = make_source(name, folder)
        info = probe_video(source)
        whole = processing_input(source, size, frames, folder)
        originals = decode_frames(whole)
        count = len(originals)
        fps = info.fps_text
        duration = float(count / Fraction(fps))
        cuts = [cut for cut in planned_cuts(source) if 0 < cut < count]
        flows = clip_flows(originals)
        # one_pass: the same frames as one segment, losslessly: what these frames flicker at the seams'
        # positions with no seam there at all (the floor the seam runs are measured against)
        settings = {"lossless": ({"crf": 0}, cuts), "one_pass": ({"crf": 0}, []), "crf18": ({"crf": 18}, cuts),
                    "quality_default": ({}, cuts)}
        runs, outputs = {}, {}
        for label, (option, job_cuts) in settings.items():
            manifest = write_job(folder / label, whole, job_cuts, count, {"compile": False, **option})
            styled, seconds = run_job(folder / label, manifest)
            outputs[label] = styled
            record = json.loads(result_paths(folder / label / "out", manifest.segments[0])[1].read_text())
            runs[label] = {"kbps": round(job_kbps(folder / label, manifest, duration), 1),
                           "job_seconds_per_frame": round(seconds / count, 4),
                           "boundary_ratio": boundary_ratio(ewarp_series(styled, flows), cuts),
                           **({"quality_choice": record["quality_choice"]} if "quality_choice" in record else {})}
        reference = encode_frames(np.stack(outputs["lossless"]), folder / "reference.mp4", fps,
                                  EncodeOptions(crf=0, preset="ultrafast"))
        for label in ("crf18", "quality_default"):
            runs[label]["vmaf"] = scored(outputs[label], reference, fps, folder, label)
        styled = np.stack(outputs["lossless"])
        alone, old_seconds = per_segment(styled, cuts, fps, 18, folder)
        decoded = decode_frames(join_pieces(alone, folder / "alone.mp4"))
        runs["per_segment"] = {"crf": 18, "encoder": "libx264, 8-bit, one per segment, B-frames on",
                               "kbps": round(sum(path.stat().st_size for path in alone) * 8 / 1000 / duration, 1),
                               "boundary_ratio": boundary_ratio(ewarp_series(decoded, flows), cuts),
                               "vmaf": scored(decoded, reference, fps, folder, "per_segment")}
        # Encode time alone, on the same styled frames: before (an encoder per segment, CRF 18) against
        # now (one encoder without B-frames at the searched CRF, plus the search).
        started = time.perf_counter()
        chosen = choose_crf(styled[:25], fps, reorder=False).crf  # what the job does: its first 25 frames searched
        search_seconds = time.perf_counter() - started
        old = old_seconds / count
        chosen_alone = spanning_seconds(styled, fps, chosen, folder) / count
        new = chosen_alone + search_seconds / count
        source_kbps = source.stat().st_size * 8 / 1000 / info.duration  # the bundled clip has no audio
        at_size = source_kbps * size[0] * size[1] / (info.width * info.height)
        return {
            "source": name, "codec": info.codec, "pix_fmt": info.pix_fmt,
            "source_size": [info.width, info.height], "output_size": list(size), "frames": count,
            "segment_starts": cuts, "source_kbps": round(source_kbps, 1),
            "source_kbps_at_output_size": round(at_size, 1),
            # the source frames' flicker at the same positions (a CRF 6 source measures as high: content)
            "source_boundary_ratio": boundary_ratio(ewarp_series(originals, flows), cuts), "runs": runs,
            # each run's seam flicker over the one-pass output's at the same frames: 1.0 is no seam at all
            "seam_excess": {label: round(run["boundary_ratio"] / runs["one_pass"]["boundary_ratio"], 3)
                            for label, run in runs.items() if run["boundary_ratio"] is not None},
            "bitrate_vs_source": {label: round(runs[label]["kbps"] / at_size, 2)
                                  for label in ("per_segment", "crf18", "quality_default")},
            "encode_s_per_frame": {"per_segment": round(old, 5), "quality_default": round(new, 5),
                                   "search_s": round(search_seconds, 2)},
            "encode_time_ratio": round(new / old, 2),  # the search spread over this clip's frames only
            "encode_time_ratio_without_search": round(chosen_alone / old, 2),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 128x72, 24 frames, two sources")
    parser.add_argument("--output", type=Path, help="results JSON")
    parser.add_argument("--frames", type=int, default=132, help="frames of each source styled (default 132)")
    parser.add_argument("--looped-frames", type=int, default=200,
                        help="frames of the 30 s looped clip styled (default 200: past its loop point at 132)")
    args = parser.parse_args(argv)
    size, frames = ((128, 72), 24) if args.quick else ((384, 216), args.frames)
    # the looped clip's first 132 frames are the bundled clip's: take it past its first loop point
    frames_of = {"looped_30s": 24 if args.quick else args.looped_frames}
    names = ("bundled", "hdr10") if args.quick else tuple(SOURCES)
    report = BenchReport(quick_path(RESULTS, args.quick, args.output), "output_size", targets=TARGETS,
                         model="real scoring job, style 19, one CPU rank", stability=DEFAULT_STABILITY,
                         frames_per_source=frames, looped_frames=frames_of["looped_30s"], sources=[])
    for name in names:
        with report.part(name):
            result = measure(name, size, frames_of.get(name, frames))
            report["sources"].append(result)
            print(json.dumps({key: result[key] for key in ("source", "bitrate_vs_source", "encode_time_ratio",
                                                           "seam_excess")}
                             | {"vmaf": {k: v.get("vmaf") for k, v in result["runs"].items()},
                                "boundary_ratio": {k: v["boundary_ratio"] for k, v in result["runs"].items()}}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
