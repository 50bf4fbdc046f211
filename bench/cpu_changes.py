"""The CPU changes of issue 16 measured against their absence, side by side in one process.

    python bench/cpu_changes.py [--threads 2] [--rounds 4] [--eager] [--output PATH]
    python bench/cpu_changes.py --quick     (smoke: 128x72, 1 round, eager; cpu_changes.quick.json)

Compiled fp32 MultiStyleNet on real bigbuckbunny frames, 1280x720:
  before  the 3-channel output norm channels-last, glibc's default malloc (large blocks mmap'd)
  after   the output norm NCHW, freed memory kept in the heap (scoring_job/heap.py)
  int8    `after` with the image conv in int8 (precision int8, scoring_job/models/int8.py)
The settings alternate frame pair by frame pair (glibc's are switched back and forth with
mallopt), so drift on a shared machine hits all alike. Reports wall and CPU seconds a frame
(best round), minor page faults a frame, the largest output difference before/after (fp32 must
not change beyond rounding) and int8's PSNR against fp32. Writes bench/results/cpu_changes.json.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import BenchReport, quick_path
from scoring_job import heap
from scoring_job.engine import Stylizer, choose_device
from scoring_job.probe import probe_video
from scoring_job.quality import psnr
from scoring_job.style_spec import parse_style
from scoring_job.video_io import FrameReader, output_size
from tools.footage import bundled_clip

RESULTS = Path(__file__).with_name("results") / "cpu_changes.json"
GLIBC_DEFAULTS = ((heap.M_MMAP_MAX, 65536), (heap.M_TRIM_THRESHOLD, 128 * 1024), (heap.M_TOP_PAD, 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--eager", action="store_true", help="do not torch.compile (the record compiles)")
    parser.add_argument("--quick", action="store_true", help="smoke: 128x72, 1 round, eager")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/cpu_changes.json)")
    args = parser.parse_args()
    width = 128 if args.quick else 1280
    rounds = 1 if args.quick else args.rounds
    compiled = not (args.eager or args.quick)
    torch.set_num_threads(args.threads)
    report = BenchReport(quick_path(RESULTS, args.quick, args.output), "cpu_changes", quick=args.quick,
                         compiled=compiled)
    with report.part("measure"):
        report.update(measure(width, rounds, compiled, args.threads))
    print(json.dumps(report, indent=2))


def measure(width: int, rounds: int, compiled: bool, threads: int) -> dict:
    source = bundled_clip()
    info = probe_video(source)
    frames = next(FrameReader(source, info, output_size(info, width / info.width)).batches(2))
    libc = ctypes.CDLL("libc.so.6")

    def settings(values):
        return lambda: [libc.mallopt(parameter, value) for parameter, value in values]

    stylizers = {
        "before": Stylizer(parse_style("19"), choose_device("cpu"), compile_model=compiled),
        "after": Stylizer(parse_style("19"), choose_device("cpu"), compile_model=compiled),
        "int8": Stylizer(parse_style("19"), choose_device("cpu", precision="int8"), compile_model=compiled),
    }
    stylizers["before"].model.expand[2].plain_output = False
    setups = {"before": settings(GLIBC_DEFAULTS), "after": settings(heap.SETTINGS), "int8": settings(heap.SETTINGS)}
    outputs = {name: stylizer.styled(frames[:1]) for name, stylizer in stylizers.items()}  # compiles
    wall = {name: [] for name in stylizers}
    cpu = {name: [] for name in stylizers}
    faults = {}
    for _ in range(rounds):
        for name, stylizer in stylizers.items():
            setups[name]()
            stylizer(frames[:1])
            minor, cpu_start, wall_start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time(), \
                time.perf_counter()
            for index in range(len(frames)):
                stylizer(frames[index : index + 1])
            wall[name].append((time.perf_counter() - wall_start) / len(frames))
            cpu[name].append((time.process_time() - cpu_start) / len(frames))
            faults[name] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - minor) / len(frames)
    best_wall = {name: min(values) for name, values in wall.items()}
    best_cpu = {name: min(values) for name, values in cpu.items()}
    return {
        "size": f"{frames.shape[2]}x{frames.shape[1]}",
        "threads": threads,
        "wall_s_per_frame": {name: round(value, 4) for name, value in best_wall.items()},
        "cpu_s_per_frame": {name: round(value, 4) for name, value in best_cpu.items()},
        "page_faults_per_frame": {name: round(value) for name, value in faults.items()},
        "after_speedup_wall": round(best_wall["before"] / best_wall["after"], 3),
        "after_speedup_cpu": round(best_cpu["before"] / best_cpu["after"], 3),
        "int8_speedup_wall": round(best_wall["after"] / best_wall["int8"], 3),
        "int8_speedup_cpu": round(best_cpu["after"] / best_cpu["int8"], 3),
        "fp32_max_abs_diff": float((outputs["before"] - outputs["after"]).abs().max()),
        "int8_psnr_db": round(psnr(stylizers["int8"](frames[:1]), stylizers["after"](frames[:1]), 255), 2),
    }


if __name__ == "__main__":
    main()
