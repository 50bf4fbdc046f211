"""Media activities benchmark: split + stitch of generated 1080p clips, against real Azurite.

    python bench/media.py [--lengths 60,300]

For each length it generates a 1920x1080 25 fps clip with AAC audio (x264, ~8.5 Mbit/s, a
keyframe every 10 s), uploads it, then times the activities exactly as the orchestrator runs them
(probe + every split range, extract_audio, stitch; the scoring step is replaced by copying the
segments), one after another in a fresh process, and reads that process's peak RSS and the largest
ffmpeg child's. Writes bench/results/media.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restyle.settings import Settings  # noqa: E402
from scoring_job.ffmpeg_binary import ffmpeg_binary  # noqa: E402
from tools.azurite import running_azurite  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "media.json"


def generate(path: Path, seconds: int) -> None:
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000", "-t", str(seconds),
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", "250", "-c:a", "aac",
                    "-b:a", "128k", str(path)], check=True)


def transfer_rates(store, folder: Path) -> tuple[float, float]:
    """Azurite's upload and download MB/s on this machine, for the transfer floor."""
    import os

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
    from activities.audio import extract_audio_track
    from activities.probe_input import probe_input
    from activities.split import split_range
    from activities.stitch import stitch_output
    from activities.work_layout import WorkLayout
    from restyle.storage import BlobStore

    store = BlobStore.from_settings(Settings.model_validate_json(settings_json))
    store.ensure_containers()
    settings = store.settings
    store.upload_file(settings.input_container, "clip.mp4", Path(source))
    started = time.perf_counter()
    probed = probe_input(store, "clip.mp4", "bench")
    for first, last in probed["ranges"]:
        split_range(store, "clip.mp4", "bench", first, last)
    audio = extract_audio_track(store, "clip.mp4", "bench")
    split_seconds = time.perf_counter() - started
    layout = WorkLayout("bench")
    for index in range(probed["segment_count"]):  # stand-in for the scoring job
        store.copy(settings.work_container, layout.segment(index), settings.work_container, layout.styled(index))
    started = time.perf_counter()
    stitched = stitch_output(store, "clip.mp4", "bench", probed["video"], audio)
    stitch_seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the rate probe's buffers
    ffmpeg_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    up, down = transfer_rates(store, Path(source).parent)
    size_mb = Path(source).stat().st_size / 2**20
    downloads = 2 + len(probed["ranges"]) + 1  # probe, audio, each split range; stitch fetches the segments
    uploads = 2  # split uploads the segments, stitch the output
    return {
        "azurite_upload_mb_s": round(up, 1),
        "azurite_download_mb_s": round(down, 1),
        "transfer_floor_seconds": round(size_mb * (downloads / down + uploads / up), 2),
        "split_seconds": round(split_seconds, 2),
        "stitch_seconds": round(stitch_seconds, 2),
        "segments": probed["segment_count"],
        "split_mode": probed["split_mode"],
        "frames": stitched["frames"],
        "rss_mb": round(rss_mb, 1),
        "ffmpeg_rss_mb": round(ffmpeg_rss_mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="60,300", help="clip lengths in seconds; the last is the headline")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-media-") as folder:
        work = Path(folder)
        with running_azurite(work / "azurite") as connection:
            for seconds in (int(v) for v in args.lengths.split(",")):
                clip = work / f"clip{seconds}.mp4"
                generate(clip, seconds)
                settings = Settings(storage_connection_string=connection, temp_root=work / "scratch",
                                    input_container=f"in{seconds}", work_container=f"work{seconds}",
                                    output_container=f"out{seconds}", rejected_container=f"rej{seconds}",
                                    styles_container=f"st{seconds}")
                done = subprocess.run([sys.executable, __file__, "--measure", settings.model_dump_json(), str(clip)],
                                      capture_output=True, text=True, check=True)
                figures = json.loads(done.stdout)
                total = figures["split_seconds"] + figures["stitch_seconds"]
                figures.update(clip_seconds=seconds, clip_mb=round(clip.stat().st_size / 2**20, 1),
                               realtime_fraction=round(total / seconds, 4))
                print(json.dumps(figures), flush=True)
                runs.append(figures)
                clip.unlink()
    short, long = runs[0], runs[-1]
    results = {
        "realtime_fraction": long["realtime_fraction"],
        "rss_mb_short": short["rss_mb"],
        "rss_mb_long": long["rss_mb"],
        "ffmpeg_rss_mb_short": short["ffmpeg_rss_mb"],
        "ffmpeg_rss_mb_long": long["ffmpeg_rss_mb"],
        "runs": runs,
        "note": "split = probe + all split ranges + extract_audio, run one after another in one process; "
                "in Azure the split ranges run in parallel on separate instances. transfer_floor_seconds = "
                "the clip's size moved as many times as the activities move it, at Azurite's measured rates",
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2], sys.argv[3])))
    else:
        main()
