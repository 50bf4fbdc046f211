"""`make demo`: the real flow on this machine. Azurite and devhost start, the bundled clip is dropped into
input/, the blob trigger starts the job, and the job is followed over `GET /api/jobs/{id}` until the
styled video and its before/after preview can be downloaded into ./out/.

Everything started here is stopped again, also on Ctrl-C or failure (a running job is canceled
first, so no scoring process outlives the demo). The default size is half resolution (640x360): the
CPU model runs ~15 fps there against ~3 fps at 720p on a 2-core machine; `--scale 1` keeps 720p.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from devhost.process import DevhostProcess, running_devhost
from restyle.settings import Settings
from scoring_job.probe import probe_video
from tools.azurite import free_port, running_azurite
from tools.cli.follow import progress_text
from tools.footage import bundled_clip

ROOT = Path(__file__).resolve().parents[1]
ENDED = ("Completed", "Failed", "Terminated", "Canceled")
# App settings for a short local run: poll the scoring job every 1-3 s instead of backing off to 60 s.
DEMO_SETTINGS = {"RESTYLE_POLL_INITIAL_SECONDS": "1", "RESTYLE_POLL_MAX_SECONDS": "3"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--style", default="19", help="a built-in style 0-25 or a blend like 3:0.5,12:0.5")
    parser.add_argument("--scale", default="0.5", help="processing size as a fraction of 1280x720 (0 < scale <= 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "out", help="where the results are downloaded")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def find_job(host: DevhostProcess, blob: str, deadline: float) -> str:
    """The blob trigger started the job; its id is in the job list once the orchestration runs."""
    while time.monotonic() < deadline:
        _, listing = host.request("GET", "/api/jobs")
        for job in (listing or {}).get("jobs", []):
            if job["blob"] == blob:
                return job["id"]
        time.sleep(0.5)
    raise TimeoutError(f"no job was started for {blob}; devhost log: {host.log_path}")


def follow(host: DevhostProcess, job_id: str, deadline: float) -> dict:
    """Print each change of stage and progress until the job ends."""
    shown = None
    while time.monotonic() < deadline:
        status, job = host.request("GET", f"/api/jobs/{job_id}")
        if status != 200:
            raise RuntimeError(f"GET /api/jobs/{job_id} answered {status}: {job}")
        line = progress_text(job)
        if line != shown:
            say(line)
            shown = line
        if job["status"] in ENDED:
            return job
        time.sleep(1)
    raise TimeoutError(f"job {job_id} did not finish in time; devhost log: {host.log_path}")


def cancel(host: DevhostProcess, job_id: str) -> None:
    """DELETE the job, which also stops its scoring processes (they run detached from devhost)."""
    say(f"canceling job {job_id}")
    try:
        host.request("DELETE", f"/api/jobs/{job_id}")
    except OSError as error:
        say(f"could not cancel job {job_id}: {error}")


def download(service: BlobServiceClient, settings: Settings, blob: str, folder: Path) -> Path:
    """`output/<name>` (as the job reports it) into the folder, written under a temp name first."""
    name = blob.removeprefix(f"{settings.output_container}/")
    target = folder / Path(name).name
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as handle:
        service.get_blob_client(settings.output_container, name).download_blob().readinto(handle)
    partial.replace(target)
    return target


def run(args: argparse.Namespace) -> int:
    settings, clip = Settings(), bundled_clip()
    started = time.monotonic()
    deadline = started + args.timeout
    with tempfile.TemporaryDirectory(prefix="restyle-demo-") as scratch:
        scratch_dir = Path(scratch)
        say("starting Azurite")
        with running_azurite(scratch_dir / "azurite") as storage:
            say("starting devhost (the Function App, locally)")
            env = {**DEMO_SETTINGS, "RESTYLE_TEMP_ROOT": str(scratch_dir / "work")}
            with running_devhost(free_port(), scratch_dir / "state", storage, scratch_dir / "devhost.log",
                                 env=env) as host:
                service = BlobServiceClient.from_connection_string(storage)
                if not service.get_container_client(settings.input_container).exists():
                    service.create_container(settings.input_container)
                say(f"uploading {clip.name} to {settings.input_container}/ (style {args.style}, scale {args.scale})")
                with clip.open("rb") as data:
                    service.get_blob_client(settings.input_container, clip.name).upload_blob(
                        data, overwrite=True, metadata={"style": args.style, "scale": args.scale})
                job_id = find_job(host, clip.name, deadline)
                say(f"job {job_id} started by the blob trigger; following GET /api/jobs/{job_id}")
                try:
                    job = follow(host, job_id, deadline)
                except BaseException:
                    cancel(host, job_id)
                    raise
                if job["status"] != "Completed":
                    say(f"job ended {job['status']}: {job.get('error')} (devhost log: {host.log_path})")
                    return 1
                args.out.mkdir(parents=True, exist_ok=True)
                video = download(service, settings, job["output"]["output_blob"], args.out)
                preview = download(service, settings, job["output"]["preview_blob"], args.out)
    facts = probe_video(video)
    say(f"styled video: {video}")
    say(f"preview:      {preview}")
    say(f"{facts.frame_count} frames at {facts.width}x{facts.height}, {facts.fps_text} fps, audio "
        f"{facts.audio_codec if facts.has_audio else 'MISSING'}; done in {time.monotonic() - started:.0f} s")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a killed `make` cleans up like Ctrl-C
    try:
        return run(args)
    except KeyboardInterrupt:
        say("interrupted: everything the demo started has been stopped")
        return 130
    except (RuntimeError, TimeoutError) as error:
        say(f"failed: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
