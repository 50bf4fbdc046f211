"""Media activities benchmark: probe + split + stitch of generated 1080p clips, against real Azurite.

    python bench/media.py [--lengths 60,300] [--big-gb 1.0]
    python bench/media.py --quick      (smoke: 320x180 clips of 4 and 12 s, no big source; media.quick.json)

For each length it generates a 1920x1080 25 fps clip with AAC audio (x264, ~8.5 Mbit/s, a
keyframe every 10 s), plus one source of at least `--big-gb` GB (the longest clip repeated by
stream copy), uploads it, then runs the activities exactly as the orchestrator does (probe, one
split per unit, stitch; the scoring step is replaced by a server-side copy of each segment, not
counted), one after another in a fresh process. It counts the bytes every activity reads and
writes in storage (restyle.storage.Traffic), samples local scratch use (devhost.scratch), times the
longest single activity and reads the process's peak RSS. Writes bench/results/media.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import BenchReport, quick_path  # noqa: E402
from restyle.settings import Settings  # noqa: E402
from scoring_job.ffmpeg_binary import ffmpeg_binary  # noqa: E402
from tools.azurite import running_azurite  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "media.json"


def generate(path: Path, seconds: int, size: str = "1920x1080") -> None:
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", "250", "-c:a", "aac",
                    "-b:a", "128k", str(path)], check=True)


def repeat(source: Path, path: Path, times: int) -> None:
    """A long source made fast: the clip `times` over by stream copy (timestamps continue)."""
    listing = path.with_suffix(".txt")
    listing.write_text(f"file '{source}'\n" * times)
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
                    "-c", "copy", "-movflags", "+faststart", str(path)], check=True)
    listing.unlink()


def transfer_rates(store, folder: Path) -> tuple[float, float]:
    """Azurite's upload and download MB/s on this machine, for the transfer floor."""
    sample = folder / "rate.bin"
    with sample.open("wb") as out:
        for _ in range(64):
            out.write(os.urandom(1 << 20))
    started = time.perf_counter()
    store.upload_file(store.settings.work_container, "rate.bin", sample)
    up = 64 / (time.perf_counter() - started)
    started = time.perf_counter()
    store.download_file(store.settings.work_container, "rate.bin", folder / "rate.back")
    down = 64 / (time.perf_counter() - started)
    store.delete(store.settings.work_container, "rate.bin")
    sample.unlink()
    (folder / "rate.back").unlink()
    return up, down


def measure(settings_json: str, source: str) -> dict:
    """Runs in its own process so that its peak RSS belongs to this clip alone."""
    from activities.media.probe_input import probe_input
    from activities.media.split import split_unit
    from activities.media.stitch import stitch_output
    from activities.work_layout import WorkLayout
    from devhost.scratch import metered
    from restyle.storage import BlobStore

    store = BlobStore.from_settings(Settings.model_validate_json(settings_json))
    store.ensure_containers()
    settings = store.settings
    store.upload_file(settings.input_container, "clip.mp4", Path(source))
    size = Path(source).stat().st_size
    seconds: dict[str, float] = {}
    moved = {"down": 0, "up": 0}

    def timed(name: str, call):
        before = (store.traffic.bytes_down, store.traffic.bytes_up)
        started = time.perf_counter()
        result = call()
        seconds[name] = time.perf_counter() - started
        moved["down"] += store.traffic.bytes_down - before[0]
        moved["up"] += store.traffic.bytes_up - before[1]
        return result

    layout = WorkLayout("bench")
    with metered(settings.temp_root) as scratch:
        probed = timed("probe", lambda: probe_input(store, "clip.mp4", "bench"))
        etag = probed["etag"]
        for first, last in probed["units"]:
            timed(f"split {first}", lambda f=first, la=last: split_unit(store, "clip.mp4", etag, "bench", f, la))
        segment_bytes = [store.info(settings.work_container, layout.segment(k)).size
                         for k in range(probed["segment_count"])]
        for index in range(probed["segment_count"]):  # stand-in for the scoring job: not counted
            store.copy(settings.work_container, layout.segment(index), settings.work_container, layout.styled(index))
        stitched = timed("stitch", lambda: stitch_output(store, "clip.mp4", etag, "bench"))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the rate probe's buffers
    ffmpeg_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    up, down = transfer_rates(store, Path(source).parent)
    size_mb = size / 2**20
    split_seconds = sum(v for k, v in seconds.items() if k != "stitch")
    return {
        "azurite_upload_mb_s": round(up, 1),
        "azurite_download_mb_s": round(down, 1),
        # what the bytes actually moved cost at Azurite's rates: the floor for this design
        "transfer_floor_seconds": round(moved["down"] / 2**20 / down + moved["up"] / 2**20 / up, 2),
        "split_seconds": round(split_seconds, 2),
        "stitch_seconds": round(seconds["stitch"], 2),
        "probe_seconds": round(seconds["probe"], 3),
        "max_activity_seconds": round(max(seconds.values()), 2),
        "max_split_seconds": round(max(v for k, v in seconds.items() if k.startswith("split")), 2),
        "segments": probed["segment_count"],
        "split_units": len(probed["units"]),
        "split_mode": probed["split_mode"],
        "frames": stitched["frames"],
        "output_format": stitched["format"],
        "bytes_down_ratio": round(moved["down"] / size, 3),
        "bytes_up_ratio": round(moved["up"] / size, 3),
        "largest_segment_mb": round(max(segment_bytes) / 2**20, 2),
        "peak_scratch_mb": round(scratch.peak_bytes / 2**20, 2),
        "rss_mb": round(rss_mb, 1),
        "ffmpeg_rss_mb": round(ffmpeg_rss_mb, 1),
        "source_mb": round(size_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="60,300", help="clip lengths in seconds; the last is the headline")
    parser.add_argument("--big-gb", type=float, default=1.0, help="also run a source of at least this size (0: skip)")
    parser.add_argument("--quick", action="store_true", help="smoke: 320x180 clips of 4 and 12 s, no big source")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/media.json)")
    args = parser.parse_args()
    size = "320x180" if args.quick else "1920x1080"
    if args.quick:
        args.lengths, args.big_gb = "4,12", 0
    report = BenchReport(quick_path(RESULTS, args.quick, args.output), "media", quick=args.quick, size=size,
                         runs=[])
    runs = report["runs"]
    lengths = [int(v) for v in args.lengths.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-media-") as folder:
        work = Path(folder)
        with running_azurite(work / "azurite") as connection:
            clips = []
            for seconds in lengths:
                clip = work / f"clip{seconds}.mp4"
                generate(clip, seconds, size)
                clips.append((seconds, clip))
            if args.big_gb > 0:
                base_seconds, base = clips[-1]
                times = max(2, -(-int(args.big_gb * 1e9) // base.stat().st_size))
                big = work / "big.mp4"
                repeat(base, big, times)
                clips.append((base_seconds * times, big))
            for seconds, clip in clips:
                settings = Settings(storage_connection_string=connection, temp_root=work / "scratch",
                                    input_container=f"in{seconds}", work_container=f"work{seconds}",
                                    output_container=f"out{seconds}", rejected_container=f"rej{seconds}",
                                    styles_container=f"st{seconds}")
                with report.part(f"{seconds} s"):
                    done = subprocess.run([sys.executable, __file__, "--measure", settings.model_dump_json(),
                                           str(clip)], capture_output=True, text=True)
                    if done.returncode:
                        raise RuntimeError(f"measuring the {seconds} s clip failed: {done.stderr[-2000:]}")
                figures = json.loads(done.stdout)
                total = figures["split_seconds"] + figures["stitch_seconds"]
                figures.update(clip_seconds=seconds, clip_mb=round(clip.stat().st_size / 2**20, 1),
                               realtime_fraction=round(total / seconds, 4),
                               parallel_realtime_fraction=round(
                                   (figures["probe_seconds"] + figures["max_split_seconds"]
                                    + figures["stitch_seconds"]) / seconds, 4))
                print(json.dumps(figures), flush=True)
                runs.append(figures)
                report.update(summary(runs, len(lengths)))
                report.write()
            for _, clip in clips:
                clip.unlink()
    print(f"wrote {report.path}")


def summary(runs: list[dict], lengths: int) -> dict:
    """The keys the README's table reads: the headline is the last of `--lengths`."""
    short, headline = runs[0], runs[min(lengths, len(runs)) - 1]
    return {
        "realtime_fraction": headline["realtime_fraction"],
        "bytes_down_ratio": max(run["bytes_down_ratio"] for run in runs),
        "bytes_up_ratio": max(run["bytes_up_ratio"] for run in runs),
        "peak_scratch_mb": max(run["peak_scratch_mb"] for run in runs),
        "max_activity_seconds": max(run["max_activity_seconds"] for run in runs),
        "rss_mb_short": short["rss_mb"],
        "rss_mb_long": headline["rss_mb"],
        "rss_mb_big": runs[-1]["rss_mb"],
        "ffmpeg_rss_mb_short": short["ffmpeg_rss_mb"],
        "ffmpeg_rss_mb_long": headline["ffmpeg_rss_mb"],
        "note": "split = probe + every split unit, run one after another in one process (in Azure the units "
                "run in parallel: parallel_realtime_fraction = probe + the longest split + stitch); bytes ratios "
                "= bytes the activities read/wrote in storage over the source size, all activities of one job; "
                "transfer_floor_seconds = those bytes at Azurite's measured rates",
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3])))
    else:
        main()
