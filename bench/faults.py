"""Fault injection end to end: the real app on devhost + Azurite + the local scoring backend.

    python bench/faults.py [--only worker_sigkill,devhost_kill] [--outage-seconds 20]
    python bench/faults.py --quick       (smoke: one case, a rank killed at the first segment; faults.quick.json)

Each case uploads the same clip under its own name, waits until the job is at the case's point
(GET /api/jobs/{id}, devhost's log lines, the scoring job's files), injects one fault, lets the job
run to its end and checks what a user gets: Completed, an exact output (frame count, duration
within one frame, audio md5 equal to the source's), exactly one output video + preview, and no
other blob or partial size ever listed in output/ (polled all through the case). Writes
bench/results/faults.json. tests/test_faults.py runs a subset of the same cases.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from azure.storage.blob import BlobServiceClient  # noqa: E402
from e2e_support import (  # noqa: E402
    ENDED,
    FAST,
    LogTail,
    Stack,
    begun_activities,
    command_line,
    completed_activities,
    descendants,
    ended,
    jobs_for,
    running_stack,
    wait_for,
    write_clip,
)

from activities.media.stitch import output_names  # noqa: E402
from api.jobs import job_instance_id  # noqa: E402
from api.uploads import options_from_metadata  # noqa: E402
from bench.report import BenchReport, quick_path  # noqa: E402
from tools.media_facts import audio_md5, frame_count, video_duration  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "faults.json"
# 128 frames of 256x144 at 24 fps cut into 8 segments of 16 (~1 s of scoring each on this machine).
CLIP = {"frames": 128, "size": "256x144"}
QUICK_CLIP = {"frames": 48, "size": "160x96"}  # the smoke run: 3 segments, the same steps
# Eight segments; styled results kept after success so that recomputed segments can be counted.
APP_SETTINGS = {"SEGMENTS_PER_WORKER": "4", "KEEP_WORK_ON_SUCCESS": "true"}
# Lossless styled segments make the output > 4 MiB, so stitch uploads it as staged blocks + a commit.
METADATA = {"style": "19", "crf": "0", **FAST}
JOB_TIMEOUT = 900.0  # generous: the machine is shared, and a busy neighbour slows every stage many times over
STAGE_TIMEOUT = 600.0
# Longer than the storage SDK's own retries (~85 s of backoff here): activities fail and are retried.
LONG_OUTAGE_SECONDS = 120.0


@dataclass(frozen=True)
class Source:
    """What the output must match: the uploaded clip's frames, duration and audio packets."""

    path: Path
    frames: int
    duration: float
    audio_md5: str

    @classmethod
    def of(cls, path: Path) -> Source:
        return cls(path, frame_count(path), video_duration(path), audio_md5(path))


@dataclass
class Run:
    """One case in flight: its job, and devhost's log from the moment the clip was uploaded."""

    stack: Stack
    job_id: str
    blob: str
    log: LogTail
    outage_seconds: float

    def job(self) -> dict:
        """The job as GET /api/jobs/{id} shows it; empty until the blob trigger has started it."""
        status, job = self.stack.host.request("GET", f"/api/jobs/{self.job_id}")
        return job if status == 200 else {}

    def state_dir(self, attempt: int) -> Path:
        return self.stack.temp_root / "local-jobs" / self.job_id / f"attempt-{attempt}"

    def attempts(self) -> int:
        return len(list((self.stack.temp_root / "local-jobs" / self.job_id).glob("attempt-*")))

    def wait_stage(self, stage: str, condition: Callable[[dict], bool] = lambda job: True) -> dict:
        def reached() -> dict | None:
            job = self.job()
            if job.get("status") in ENDED:
                raise AssertionError(f"the job ended before stage {stage}: {job}")
            return job if job.get("stage") == stage and condition(job) else None

        return wait_for(reached, STAGE_TIMEOUT, f"stage {stage}", interval=0.05)

    def wait_activity(self, name: str) -> None:
        self.log.wait(rf"activity\.begin instance={self.job_id} \S+ name={name} ", STAGE_TIMEOUT)

    def styled_results(self) -> dict[str, str]:
        """Result JSONs of finished segments in work/<job>/styled/ -> their ETags."""
        container = self.stack.container("work")
        return {blob.name: blob.etag for blob in container.list_blobs(name_starts_with=f"{self.job_id}/styled/")
                if blob.name.endswith(".json")}


def mid_scoring(job: dict) -> bool:
    progress = job["progress"]
    return 0 < progress.get("segments_done", 0) < progress.get("segments_total", 0)


class Fault:
    """One kind of fault: `inject` waits for the point and strikes; `assess` reads the aftermath."""

    name = ""
    points: tuple[str, ...] = ()

    def inject(self, run: Run, point: str) -> dict:
        raise NotImplementedError

    def assess(self, run: Run) -> dict:
        return {}

    @staticmethod
    def checks(figures: dict) -> dict[str, bool]:
        return {}

    @staticmethod
    def summary(figures: dict) -> str:
        return ""


class WorkerKill(Fault):
    """SIGKILL the torchrun rank mid-segment: the attempt fails, the resubmitted one redoes only the rest."""

    name, points = "worker_sigkill", ("first", "middle", "last", "middle_2_ranks")

    def inject(self, run: Run, point: str) -> dict:
        total = run.wait_stage("scoring")["progress"]["segments_total"]
        target = {"first": 0, "last": total - 1}.get(point, total // 2)
        attempt = run.state_dir(1)
        # The rank styling the target segment writes it under a temporary name that carries its pid:
        # `.segment_N.mp4.<pid>.partial` encoded alone, `.segment_N.<pid>.partial.mp4` as a piece of a
        # rank's one encode (scoring_job/spanning.py).
        partial = wait_for(lambda: list((attempt / "output").glob(f".segment_{target:05d}.*partial*")),
                           STAGE_TIMEOUT, f"segment {target} in progress", interval=0.01)[0]
        rank = int(next(part for part in partial.name.split(".")[2:] if part.isdigit()))
        runner = json.loads((attempt / "process.json").read_text())["pid"]
        assert rank in descendants(runner) and _is_rank(command_line(rank)), f"{rank} is no rank of this job"
        os.kill(rank, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: (attempt / "exit_code").exists(), STAGE_TIMEOUT, "attempt 1 to end", interval=0.05)
        self.exit_after_kill = round(time.monotonic() - killed, 2)
        self.snapshot = run.styled_results()  # what attempt 1 finished and uploaded
        done = len(list((attempt / "output").glob("segment_*.json")))
        target_done = (attempt / "output" / f"segment_{target:05d}.json").exists()
        return {"segments_total": total, "target_segment": target, "done_at_kill": done,
                "unfinished_at_kill": total - done, "hit": not target_done,
                "attempt1_exit_after_kill_s": self.exit_after_kill,
                "attempt1_exit": json.loads((attempt / "exit_code").read_text())}

    def assess(self, run: Run) -> dict:
        log = (run.state_dir(2) / "job.log").read_text() if run.state_dir(2).exists() else ""
        ranks = re.findall(r"rank \d+/(\d+): (\d+) segments assigned, (\d+) already done", log)
        after = run.styled_results()
        return {"attempts": run.attempts(), "ranks": len(ranks), "attempt2_assigned": sum(int(r[1]) for r in ranks),
                "attempt2_already_done": sum(int(r[2]) for r in ranks),
                "recomputed": len(re.findall(r"segment segment_\d+ done", log)),
                "results_new_in_storage": len(set(after) - set(self.snapshot)),
                "results_overwritten": sum(after.get(name) != etag for name, etag in self.snapshot.items())}

    @staticmethod
    def checks(figures: dict) -> dict[str, bool]:
        unfinished = figures["unfinished_at_kill"]
        return {"resubmitted": figures["attempts"] == 2,
                "recomputed_only_unfinished": figures["recomputed"] == unfinished
                and figures["attempt2_already_done"] == figures["done_at_kill"]
                and figures["results_new_in_storage"] == unfinished,
                "finished_results_kept": figures["results_overwritten"] == 0}

    @staticmethod
    def summary(f: dict) -> str:
        return (f"{f['done_at_kill']}/{f['segments_total']} segments done at the kill (ranks: {f['ranks']}); "
                f"attempt 2: {f['attempt2_already_done']} already done, {f['recomputed']} recomputed")


def _is_rank(argv: list[str]) -> bool:
    """A torchrun worker (`python -u -m scoring_job.score ...`), not torchrun itself (`--module`)."""
    return "-m" in argv and argv[argv.index("-m") + 1 :][:1] == ["scoring_job.score"]


class DevhostKill(Fault):
    """kill -9 devhost in a stage, restart it on the same state: nothing that completed runs again."""

    name, points = "devhost_kill", ("probe", "split", "scoring", "stitch", "stitch_upload")

    def inject(self, run: Run, point: str) -> dict:
        host = run.stack.host
        if point == "scoring":
            at_kill = run.wait_stage("scoring", mid_scoring)["progress"]
        elif point == "stitch_upload":
            at_kill = {"video_committed": wait_half_published(run)}
        else:
            run.wait_activity(point)
            at_kill = {}
        host.kill()
        run.log.read()
        log, self.restart_at = run.log.text, len(run.log.text)
        self.done_before = completed_activities(log, run.job_id)
        in_flight = _in_flight(log, run.job_id)
        hit = {"scoring": lambda: not (run.state_dir(1) / "exit_code").exists(),
               "stitch_upload": lambda: not at_kill["video_committed"]}.get(point, lambda: point in in_flight)()
        host.start()
        return {**at_kill, "in_flight_at_kill": in_flight, "completed_before_kill": len(self.done_before),
                "hit": hit}

    def assess(self, run: Run) -> dict:
        after = run.log.text[self.restart_at:]
        rerun = [task for task in begun_activities(after, run.job_id) if task in self.done_before]
        names = re.findall(rf"activity\.begin instance={run.job_id} \S+ name=(\w+)", after)
        return {"completed_rerun": len(rerun), "ran_after_restart": sorted(set(names)),
                "scoring_attempts": run.attempts()}

    @staticmethod
    def checks(figures: dict) -> dict[str, bool]:
        return {"no_completed_rerun": figures["completed_rerun"] == 0,
                "scoring_not_resubmitted": figures["scoring_attempts"] == 1}

    @staticmethod
    def summary(f: dict) -> str:
        in_flight = ", ".join(f["in_flight_at_kill"]) or "none (between polls)"
        return f"in flight at the kill: {in_flight}; completed activities run again: {f['completed_rerun']}"


def _in_flight(log: str, job_id: str) -> list[str]:
    begun = re.findall(rf"activity\.begin instance={job_id} execution=(\w+) name=(\w+) task=(\d+)", log)
    finished = set(re.findall(rf"activity\.end instance={job_id} execution=(\w+) name=(\w+) task=(\d+)", log))
    return sorted({name for execution, name, task in begun if (execution, name, task) not in finished})


def wait_half_published(run: Run) -> bool:
    """Wait until stitch has published the preview or staged the video's blocks; True if the video
    was already committed by then (the kill came too late to land half-way)."""
    video, preview = (name.split("/")[-1] for name in output_names(run.blob))
    output = run.stack.container("output")

    def half() -> tuple[bool] | None:
        committed = set(output.list_blob_names(name_starts_with=Path(run.blob).stem + "."))
        staged = {blob.name for blob in output.list_blobs(name_starts_with=video, include=["uncommittedblobs"])}
        return (video in committed,) if preview in committed or video in staged else None

    return wait_for(half, STAGE_TIMEOUT, "stitch half-way", interval=0.01)[0]


class AzuriteOutage(Fault):
    """Azurite stopped for a while mid-job and started again on its data folder and port."""

    name, points = "azurite_outage", ("split", "scoring", "stitch", "scoring_long")

    def inject(self, run: Run, point: str) -> dict:
        if point.startswith("scoring"):
            run.wait_stage("scoring", mid_scoring)
        else:
            run.wait_activity(point)
        seconds = LONG_OUTAGE_SECONDS if point == "scoring_long" else run.outage_seconds
        azurite, down = run.stack.azurite, datetime.now()
        started = time.monotonic()
        clean = azurite.stop()  # from here on no request is served
        stopped = time.monotonic()
        time.sleep(max(0.0, seconds - (stopped - started)))
        restarting = time.monotonic()
        azurite.start()
        self.window = (down, datetime.now())
        return {"outage_seconds": round(restarting - started, 1), "stop_seconds": round(stopped - started, 1),
                "start_seconds": round(time.monotonic() - restarting, 1),
                "stopped_cleanly": clean, "hit": True}

    def assess(self, run: Run) -> dict:
        """Activity attempts that were running while storage was down, and how they ended."""
        down, up = self.window
        hit = [(name, (finished - begun).total_seconds(), outcome)
               for name, begun, finished, outcome in activity_spans(run.log.text, run.job_id)
               if begun < up and finished > down]
        return {"activities_during_outage": len(hit),
                "longest_activity_during_outage_s": round(max((s for _, s, _ in hit), default=0), 1),
                "failed_during_outage": sorted({name for name, _, outcome in hit if outcome != "ok"}),
                "failed_attempts": sum(outcome != "ok" for *_, outcome in hit),
                "blob_scans_failed": run.log.text.count("blob.scan_failed"), "scoring_attempts": run.attempts(),
                **uploader_health(run)}

    @staticmethod
    def checks(figures: dict) -> dict[str, bool]:
        return {"uploader_alive": not figures["uploader_died"]}

    @staticmethod
    def summary(f: dict) -> str:
        return (f"down {f['outage_seconds']} s; {f['activities_during_outage']} activity attempts spanned it "
                f"(longest {f['longest_activity_during_outage_s']} s), {f['failed_attempts']} failed; "
                f"runner upload retries: {f['uploader_retries']}; scoring attempts: {f['scoring_attempts']}")


def uploader_health(run: Run) -> dict:
    """Did the local runner's uploader thread ride out storage errors (retrying) or die on one?"""
    logs = "".join(path.read_text(errors="replace") for path in
                   (run.stack.temp_root / "local-jobs" / run.job_id).glob("attempt-*/job.log"))
    return {"uploader_retries": logs.count("upload failed, will retry"),
            "uploader_died": "Exception in thread" in logs and "in uploader" in logs}


def activity_spans(log: str, job_id: str) -> list[tuple[str, datetime, datetime, str]]:
    """(name, begin, end, outcome) of every activity attempt of a job, from devhost's log times."""
    stamp = r"^(\S+ \S+) "
    key = rf"instance={job_id} execution=(\w+) name=(\w+) task=(\d+) attempt=(\d+)"
    begun = {match[1:]: _time(match[0]) for match in re.findall(stamp + r"activity\.begin " + key, log, re.M)}
    spans = []
    for *match, outcome in re.findall(stamp + r"activity\.end " + key + r" outcome=(\S+)", log, re.M):
        if tuple(match[1:]) in begun:
            spans.append((match[2], begun[tuple(match[1:])], _time(match[0]), "ok" if outcome == "ok" else "failed"))
    return spans


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")


# (stitch no longer runs an ffmpeg process to kill: it muxes in-process; devhost_kill at stitch_upload
# covers a crash half-way through publishing)
FAULTS: dict[str, type[Fault]] = {fault.name: fault for fault in (WorkerKill, DevhostKill, AzuriteOutage)}
MATRIX = [(name, point) for name, fault in FAULTS.items() for point in fault.points]
# Cases that need other app settings run on a deployment of their own.
CASE_SETTINGS = {("worker_sigkill", "middle_2_ranks"): {"LOCAL_PROCESSES": "2"}}


class OutputWatcher:
    """Lists a case's names in output/ every `interval` s, as a user sees them (committed blobs only)."""

    def __init__(self, connection: str, container: str, prefix: str, interval: float = 0.05) -> None:
        service = BlobServiceClient.from_connection_string(connection, retry_total=0)  # an outage is just a miss
        self.container, self.prefix, self.interval = service.get_container_client(container), prefix, interval
        self.seen: dict[str, set[int]] = {}
        self.listings = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OutputWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                for blob in self.container.list_blobs(name_starts_with=self.prefix):
                    self.seen.setdefault(blob.name, set()).add(blob.size)
                self.listings += 1
            except Exception:  # noqa: BLE001 - storage down (the outage case): nothing is listed then
                continue


@dataclass
class Case:
    fault: str
    point: str
    figures: dict = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def survived(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def as_dict(self) -> dict:
        return {"fault": self.fault, "point": self.point, "survived": self.survived, "checks": self.checks,
                **self.figures}


def run_case(stack: Stack, source: Source, fault_name: str, point: str, scratch: Path,
             outage_seconds: float = 20.0) -> Case:
    """Upload the clip as `<fault>-<point>.mp4`, inject the fault at its point, check the result."""
    blob, fault, case = f"{fault_name}-{point}.mp4".replace("_", "-"), FAULTS[fault_name](), Case(fault_name, point)
    started = time.monotonic()
    with OutputWatcher(stack.azurite.connection, stack.containers["output"], Path(blob).stem + ".") as watcher:
        tail = LogTail(stack.host.log_path)
        uploaded = stack.container("input").get_blob_client(blob).upload_blob(
            source.path.read_bytes(), overwrite=True, metadata=METADATA)
        # The id the blob trigger will give the job (stable per upload), so a fault can aim at its probe.
        job_id = job_instance_id(blob, uploaded["etag"].strip('"'), METADATA["style"], options_from_metadata(METADATA))
        run = Run(stack, job_id, blob, tail, outage_seconds)
        try:
            case.figures = fault.inject(run, point)
        finally:
            restore(stack)
        done = wait_for(lambda: ended(stack.host, job_id), JOB_TIMEOUT, "the job to end", interval=0.5)
        tail.read()
    case.figures |= {"job": job_id, "status": done["status"], "seconds": round(time.monotonic() - started, 1),
                     **fault.assess(run)}
    output = check_output(stack, source, done, blob, scratch)
    case.figures |= {"output": output, "output_listings": watcher.listings,
                     "listed": {name: sorted(sizes) for name, sizes in watcher.seen.items()}}
    final = output.get("blobs", {})
    case.checks = {"completed": done["status"] == "Completed", "one_job": len(jobs_for(stack.host, blob)) == 1,
                   "output_exact": output.get("exact", False),
                   "single_output": set(final) == set(output_names(blob)),
                   "no_partial_listed": all(sizes == {final.get(name)} for name, sizes in watcher.seen.items()),
                   **fault.checks(case.figures)}
    return case


def restore(stack: Stack) -> None:
    """Whatever a case did, leave Azurite and devhost running for the next one."""
    if stack.azurite.process is None or stack.azurite.process.poll() is not None:
        stack.azurite.start()
    if stack.host.process is None or stack.host.process.poll() is not None:
        stack.host.start()


def check_output(stack: Stack, source: Source, done: dict, blob: str, scratch: Path) -> dict:
    """Download the output and compare it with the source: frames, duration (one frame), audio md5."""
    output = stack.container("output")
    blobs = {item.name: item.size for item in output.list_blobs(name_starts_with=Path(blob).stem + ".")}
    if done["status"] != "Completed":
        return {"blobs": blobs}
    local = scratch / f"{Path(blob).stem}.styled.mp4"
    local.write_bytes(output.download_blob(output_names(blob)[0]).readall())
    frames, duration, md5 = frame_count(local), video_duration(local), audio_md5(local)
    one_frame = source.duration / source.frames
    local.unlink()
    return {"blobs": blobs, "frames": frames, "source_frames": source.frames, "duration": round(duration, 3),
            "source_duration": round(source.duration, 3), "audio_md5_equal": md5 == source.audio_md5,
            "exact": frames == source.frames and abs(duration - source.duration) <= one_frame + 1e-6
            and md5 == source.audio_md5}


def table(cases: list[Case]) -> str:
    rows = ["| fault | point | hit | survived | what happened | output vs source | s | failed checks |",
            "|---|---|---|---|---|---|---|---|"]
    for case in cases:
        f, out = case.figures, case.figures.get("output", {})
        happened = f["error"] if "error" in f else FAULTS[case.fault].summary(f)
        output = (f"{out.get('frames')}/{out.get('source_frames')} frames, {out.get('duration')}/"
                  f"{out.get('source_duration')} s, audio md5 {'equal' if out.get('audio_md5_equal') else 'differs'}")
        failed = ", ".join(name for name, ok in case.checks.items() if not ok) or "-"
        rows.append(f"| {case.fault} | {case.point} | {f.get('hit')} | {case.survived} | {happened} | {output} "
                    f"| {f.get('seconds')} | {failed} |")
    return "\n".join(rows)


def run_logged(stack: Stack, source: Source, fault: str, point: str, scratch: Path, outage_seconds: float) -> Case:
    print(f"{fault} at {point} ...", flush=True)
    try:
        case = run_case(stack, source, fault, point, scratch, outage_seconds)
    except Exception as error:  # noqa: BLE001 - one broken case is a row of the table, not the end
        case = Case(fault, point, {"error": f"{type(error).__name__}: {error}"}, {"ran": False})
        restore(stack)
    print(f"  survived={case.survived} {json.dumps(case.checks)}", flush=True)
    return case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated faults or fault:point cases")
    parser.add_argument("--outage-seconds", type=float, default=20.0)
    parser.add_argument("--output", type=Path, help="default bench/results/faults.json")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (logs, local job state)")
    parser.add_argument("--quick", action="store_true", help="smoke: only worker_sigkill:first")
    args = parser.parse_args()
    wanted = ["worker_sigkill:first"] if args.quick else [part for part in args.only.split(",") if part]
    clip = QUICK_CLIP if args.quick else CLIP
    matrix = [(f, p) for f, p in MATRIX if not wanted or f in wanted or f"{f}:{p}" in wanted]
    cases: list[Case] = []
    started = time.monotonic()
    report = BenchReport(quick_path(RESULTS, args.quick, args.output), "faults", quick=args.quick,
                         setup={"clip": {**clip, "fps": 24, "audio": "aac"}, "settings": APP_SETTINGS,
                                "metadata": METADATA, "outage_seconds": args.outage_seconds,
                                "case_settings": {f"{fault}:{point}": settings
                                                  for (fault, point), settings in CASE_SETTINGS.items()}})
    with contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="faults-") as folder:
        scratch = Path(folder)
        scratch.mkdir(parents=True, exist_ok=True)
        source = Source.of(write_clip(scratch / "clip.mp4", **clip))
        groups: dict[str, list[tuple[str, str]]] = {}
        for fault, point in matrix:
            groups.setdefault(json.dumps(CASE_SETTINGS.get((fault, point), {})), []).append((fault, point))
        for number, (settings, group) in enumerate(groups.items()):
            with running_stack(scratch / f"stack{number}", **APP_SETTINGS, **json.loads(settings)) as stack:
                for fault, point in group:
                    cases.append(run_logged(stack, source, fault, point, scratch, args.outage_seconds))
                    report.update({"tried": len(cases), "survived": sum(case.survived for case in cases),
                                   "hit": sum(bool(case.figures.get("hit")) for case in cases),
                                   "seconds": round(time.monotonic() - started, 1),
                                   "cases": [case.as_dict() for case in cases]})
                    report.write()
    print(table(cases))
    print(f"tried {report['tried']}, hit {report['hit']}, survived {report['survived']}; {report['seconds']} s")
    return 0 if report["survived"] == report["tried"] else 1


if __name__ == "__main__":
    sys.exit(main())
