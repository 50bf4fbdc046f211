"""Latency: the time a user waits, blob drop to styled output, on devhost with the local backend.

    python bench/latency.py [--quick] [--runs 3] [--seconds 30]

One Azurite + devhost (tests/e2e_support.running_stack) at the app's default settings, blob
trigger scanning every 0.5 s (a stand-in for Event Grid's delivery), one compile cache for the run:
  1. latency_one_frame_s: a 1-frame 640x360 clip with audio, uploaded `--runs` times (each a new
     job); the median and the first (cold: nothing measured or cached yet) are reported, with
     where the time went, from the orchestration's history: trigger (upload -> orchestration
     start), prepare (probe, split, manifest, submit), compute (submit -> the backend's
     compute_changed event, or the poll that saw the end), finish (-> output blob);
  2. service_model_efficiency: bigbuckbunny looped to `--seconds` at 640x360 with its audio, run
     twice through the service (the first also fills the compile cache, in the background when
     too short to pay for a cold compile itself: the benchmark waits for that to finish; the
     second is the steady state and the headline), then once more with the temporal filter off (stability 0), against
     the model alone on frames in memory at that size (compiled, all cores), measured in the same
     run right after;
  3. the compile figures (cold compile, load on a fresh node, speedup) at 1 and 2 threads.
Writes bench/results/latency.json (with the load average before and after) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from e2e_support import command_line, running_stack  # noqa: E402

from bench.report import BenchReport, quick_path  # noqa: E402
from devhost.history import EventType  # noqa: E402
from scoring_job.engine import Stylizer, choose_device  # noqa: E402
from scoring_job.ffmpeg_binary import ffmpeg_binary  # noqa: E402
from scoring_job.probe import probe_video  # noqa: E402
from scoring_job.style_spec import parse_style  # noqa: E402
from scoring_job.video_io import FrameReader  # noqa: E402
from tools.footage import bundled_clip  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "latency.json"
SIZE = (640, 360)
# The app's own defaults where running_stack's test settings differ (2 ranks, 10 s segments, polls).
APP_DEFAULTS = {"local_processes": "2", "segment_seconds": "10", "poll_initial_seconds": "5",
                "poll_max_seconds": "60", "polls_per_history": "20"}


def one_frame_clip(path: Path) -> Path:
    video = f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate=25"
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", video, "-f", "lavfi",
                    "-i", "sine=frequency=440:sample_rate=48000", "-frames:v", "1", "-t", "0.04",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True)
    return path


def looped_clip(path: Path, seconds: float) -> Path:
    """The bundled real clip (5.28 s) looped to `seconds`, scaled to SIZE, its audio looped along."""
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(bundled_clip()),
                    "-t", str(seconds), "-vf", f"scale={SIZE[0]}:{SIZE[1]}", "-c:v", "libx264", "-crf", "18",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True)
    return path


def _stamp(event: dict) -> float:
    return datetime.fromisoformat(event["Timestamp"].replace("Z", "+00:00")).timestamp()


def _scheduled(history: list[dict]) -> dict[str, float]:
    """Activity name -> when it was (last) scheduled."""
    return {e.get("Name"): _stamp(e) for e in history if e["EventType"] == EventType.TASK_SCHEDULED}


def phases(history: list[dict], uploaded: float, done: float) -> dict:
    """Seconds per phase, from the orchestration's history (devhost's own event records)."""
    started = next(_stamp(e) for e in history if e["EventType"] == EventType.EXECUTION_STARTED)
    scheduled = _scheduled(history)
    return {"trigger_s": round(started - uploaded, 2), "prepare_s": round(scheduled["submit_compute"] - started, 2),
            "compute_s": round(scheduled["stitch"] - scheduled["submit_compute"], 2),
            "finish_s": round(done - scheduled["stitch"], 2),
            "noticed_by_event": any(e["EventType"] == EventType.EVENT_RAISED for e in history)}


def compute_parts(job_log: str, submitted: float, stitched: float) -> dict:
    """The compute phase split by the ranks' own log lines: start (runner and rank processes start,
    inputs download, torch imports), work (model load, compile choice, frames), end (upload, exit,
    the event, the status poll that sees it)."""
    def stamps(marker: str) -> list[float]:
        return [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                for line in job_log.splitlines() if marker in line]

    ready, done = stamps(" segments assigned, "), stamps(" done: ")
    if not ready or not done:
        return {}
    return {"start_s": round(min(ready) - submitted, 2), "work_s": round(max(done) - min(ready), 2),
            "end_s": round(stitched - max(done), 2)}


def run_job(stack, clip: Path, name: str, timeout: float, metadata: dict[str, str] | None = None) -> dict:
    """Upload, wait for the output blob, and read back where the time went."""
    output = stack.service.get_container_client(stack.containers["output"])
    target = f"{Path(name).stem}.styled.mp4"
    uploaded = time.time()
    with clip.open("rb") as data:
        stack.service.get_blob_client(stack.containers["input"], name).upload_blob(data, overwrite=True,
                                                                                   metadata=metadata)
    while not any(blob.name == target for blob in output.list_blobs(name_starts_with=target)):
        if time.time() - uploaded > timeout:
            raise TimeoutError(f"no output for {name} after {timeout} s; devhost log: {stack.host.log_path}")
        time.sleep(0.05)
    done = time.time()
    _, listing = stack.host.request("GET", "/api/jobs")
    job_id = next(job["id"] for job in listing["jobs"] if job["blob"] == name)
    _, status = stack.host.request("GET", f"/runtime/webhooks/durabletask/instances/{job_id}?showHistory=true")
    history = status["historyEvents"]
    scheduled = _scheduled(history)
    log = "".join(path.read_text() for path in sorted(stack.temp_root.glob(f"local-jobs/{job_id}/attempt-*/job.log")))
    return {"seconds": round(done - uploaded, 2), **phases(history, uploaded, done),
            "compute": compute_parts(log, scheduled["submit_compute"], scheduled["stitch"])}


def wait_for_background_compiles(timeout: float) -> float:
    """Seconds until no compile_warm process is left (the first job may have started one): the
    steady state is a machine whose compile cache holds what its jobs need."""
    started = time.monotonic()
    while any("scoring_job.compile_warm" in command_line(int(proc.name)) for proc in Path("/proc").glob("[0-9]*")):
        if time.monotonic() - started > timeout:
            raise TimeoutError("a background compile did not finish")
        time.sleep(1)
    return round(time.monotonic() - started, 1)


def model_alone_fps(clip: Path, frames: int) -> float:
    """The compiled model on frames already in memory, all cores: the ceiling for the service."""
    info = probe_video(clip)
    stylizer = Stylizer(parse_style("19"), choose_device("cpu"), compile_model=True)
    batch = stylizer.config.batch_size
    held = np.concatenate(list(FrameReader(clip, info, SIZE).batches(16)))[:frames]
    stylizer(held[:batch])
    stylizer(held[:batch])
    started = time.perf_counter()
    for first in range(0, len(held), batch):
        stylizer(held[first:first + batch])
    return len(held) / (time.perf_counter() - started)


COMPILE_ONCE = """
import json, sys, time
from pathlib import Path
import numpy as np
from scoring_job.compile_cache import CompileCache
from scoring_job.compile_choice import compile_key, prepare_model
from scoring_job.engine import Stylizer, choose_device
from scoring_job.style_spec import parse_style
width, height = int(sys.argv[2]), int(sys.argv[3])
stylizer = Stylizer(parse_style("19"), choose_device("cpu"))
frames = np.zeros((1, height, width, 3), np.uint8)
stylizer(frames)
started = time.perf_counter()
stylizer(frames)
eager = time.perf_counter() - started
cache = CompileCache(Path(sys.argv[1]))
prepare_model(stylizer, height, width, 1, "always", cache)
print(json.dumps({**vars(cache.figures(compile_key(stylizer, height, width))), "eager_s_per_frame": eager}))
"""


def compile_figures(folder: Path, threads: int) -> dict:
    """A cold compile, then a load from the cache in a fresh process with an empty Inductor folder
    (as on a new node), at SIZE with `threads` threads: the figures compile_choice.py decides with."""
    figures = {}
    for run in ("cold", "load"):
        inductor = folder / f"inductor-{run}"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TORCHINDUCTOR_CACHE_DIR": str(inductor)}
        done = subprocess.run([sys.executable, "-c", COMPILE_ONCE, str(folder / "cache"), *map(str, SIZE)], cwd=ROOT,
                              env=env, capture_output=True, text=True, check=True)
        figures = json.loads(done.stdout.splitlines()[-1])
    return {name: round(value, 3) for name, value in figures.items() if value is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="1-frame jobs (the first is the cold one)")
    parser.add_argument("--seconds", type=float, default=30, help="length of the efficiency clip")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 one-frame run, a 1 s clip once "
                        "(latency.quick.json)")
    parser.add_argument("--local-processes", default=APP_DEFAULTS["local_processes"],
                        help="ranks of a local job (the app's setting RESTYLE_LOCAL_PROCESSES)")
    parser.add_argument("--output", type=Path, help="where the JSON goes (default bench/results/latency.json)")
    parser.add_argument("--compile-only", action="store_true", help="only the compile figures (print, no file)")
    args = parser.parse_args()
    if args.compile_only:
        with tempfile.TemporaryDirectory(prefix="bench-compile-") as scratch:
            print(json.dumps({f"threads_{n}": compile_figures(Path(scratch) / str(n), n) for n in (1, 2)}, indent=2))
        return
    runs, seconds = (1, 1.0) if args.quick else (args.runs, args.seconds)
    report = BenchReport(quick_path(RESULTS, args.quick, args.output),
                         "latency", quick=args.quick,
                         settings={**APP_DEFAULTS, "local_processes": args.local_processes,
                                   "stability": "0.5 (default)", "compile": "auto (default)", "blob_poll_seconds": 0.5})
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch:
        folder = Path(scratch)
        one = one_frame_clip(folder / "one.mp4")
        long_clip = looped_clip(folder / "long.mp4", seconds)
        frames = probe_video(long_clip).frame_count
        report["clip"] = f"bigbuckbunny looped to {seconds:g} s, {SIZE[0]}x{SIZE[1]}, {frames} frames, AAC"
        with running_stack(folder / "stack", **{**APP_DEFAULTS, "local_processes": args.local_processes}) as stack:
            with report.part("one_frame"):
                singles = [run_job(stack, one, f"one-{k}.mp4", 300) for k in range(runs)]
                report.update(latency_one_frame_s=round(statistics.median(run["seconds"] for run in singles), 2),
                              latency_one_frame_cold_s=singles[0]["seconds"], one_frame_runs=singles)
            with report.part("service"):
                services = [run_job(stack, long_clip, "long-0.mp4", 1800)]
                report["service_runs"] = services
                if not args.quick:
                    report["background_compile_wait_s"] = wait_for_background_compiles(600)
                    services.append(run_job(stack, long_clip, "long-1.mp4", 1800))
                # the same, temporal filter off (metadata stability=0): the filter's share of the gap
                unfiltered = None if args.quick else run_job(stack, long_clip, "long-s0.mp4", 1800,
                                                             {"stability": "0"})
        with report.part("model_alone"):
            model_fps = model_alone_fps(long_clip, 4 if args.quick else 128)
            steady = services[-1]
            report.update(service_model_efficiency=round(frames / steady["seconds"] / model_fps, 3),
                          service_fps=round(frames / steady["seconds"], 2),
                          service_fps_first_run=round(frames / services[0]["seconds"], 2),
                          model_alone_fps=round(model_fps, 2),
                          service_model_efficiency_stability_0=unfiltered and round(
                              frames / unfiltered["seconds"] / model_fps, 3),
                          service_run_stability_0=unfiltered)
        if not args.quick:
            with report.part("compile"):
                report["compile_figures"] = {f"threads_{n}": compile_figures(folder / f"compile-{n}", n)
                                             for n in (1, 2)}
    print(json.dumps(report, indent=2))
    print(f"wrote {report.path}")


if __name__ == "__main__":
    main()
