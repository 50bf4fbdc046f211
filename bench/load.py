"""Load: N short clips dropped into input/ at once on one devhost, the app as a user runs it.

    python bench/load.py [--clips 20,50,100]     (one fresh devhost per burst size)
    python bench/load.py --quick                 (smoke: 2 clips of 6 frames; writes load.quick.json)
    python bench/load.py --slow-storage [--delay 0.2]   (GET p95 while POSTs and DELETEs wait on storage)

Azurite + devhost (tests/e2e_support.running_stack) with the local scoring backend, one scoring
process per job, uncompiled model (blob metadata `compile=false`). While the burst runs it samples,
every half second, devhost's RSS, the processes of devhost and its children (scoring jobs included:
they are devhost's children in sessions of their own), and the scoring jobs running (runner processes,
and the local backend's state dirs); a bounded polling loop times GET /api/jobs/{id} round-robin
over the jobs. Activities at once come from devhost's log (activity.begin/end). Writes
bench/results/load.json (`sizes`: one record per burst size, rewritten after each) and prints a
table; `bounded` compares the two largest bursts' peaks (RSS, processes: set by the app's limits,
not by the number of clips).

`--slow-storage` measures something else (see `slow_storage`): GET /api/jobs/{id} latency while
POSTs and DELETEs whose storage calls are made slow are in flight on the same worker loop, with
the app's blocking calls in threads and, for comparison, inline on the loop as they were before.
It prints JSON and a table, and writes a file only with --output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from e2e_support import ENDED, FAST, running_stack  # noqa: E402

from activities.compute.local import LocalBackend  # noqa: E402
from bench.report import BenchReport, load_average, quick_path  # noqa: E402
from restyle.settings import Settings  # noqa: E402
from restyle.storage import BlobStore  # noqa: E402
from scoring_job.ffmpeg_binary import ffmpeg_binary  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "load.json"
ACTIVITY = re.compile(r"^(\S+ \S+) activity\.(begin|end) ", re.MULTILINE)  # time stamp, begin or end
SETTINGS = {"poll_initial_seconds": "1", "poll_max_seconds": "5", "polls_per_history": "20"}


def make_clip(path: Path, frames: int) -> bytes:
    subprocess.run([ffmpeg_binary(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-frames:v", str(frames),
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True)
    return path.read_bytes()


def process_tree(root: int) -> list[int]:
    """root and every descendant, from /proc (scoring jobs run in sessions of their own, still children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def rss_mb(pid: int) -> float:
    try:
        line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    except (OSError, StopIteration):
        return 0.0
    return int(line.split()[1]) / 1024


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def short_command(pid: int) -> str:
    """A process's command line without the interpreter's path: `-m activities.compute.local_runner --job-id ...`."""
    words = cmdline(pid).split()
    return " ".join(words[1:5]) if words and "python" in Path(words[0]).name else " ".join(words[:4])


def mem_available_mb() -> float:
    """The machine's MemAvailable: RSS counts shared pages (torch's libraries) once per process, this does not."""
    line = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemAvailable"))
    return int(line.split()[1]) / 1024


def running_state_dirs(temp_root: Path) -> int:
    """Attempts the local backend started and that have neither an exit code nor a cancel mark yet."""
    attempts = (temp_root / "local-jobs").glob("*/attempt-*")
    return sum((a / "process.json").exists() and not (a / "exit_code").exists() and not (a / "canceled").exists()
               for a in attempts)


class Sampler(threading.Thread):
    """Samples every `interval` s; sets `starved` when the machine's available memory falls below
    `floor_mb`, so the run stops before it hurts anything else on a shared machine."""

    def __init__(self, pid: int, temp_root: Path, interval: float = 0.5, floor_mb: float = 3072) -> None:
        super().__init__(daemon=True)
        self.pid, self.temp_root, self.interval, self.floor_mb = pid, temp_root, interval, floor_mb
        self.samples: list[dict] = []
        self.stop, self.starved = threading.Event(), threading.Event()
        self.started = time.monotonic()

    def sample(self) -> dict:
        tree = process_tree(self.pid)
        return {"t": round(time.monotonic() - self.started, 1), "devhost_rss_mb": round(rss_mb(self.pid), 1),
                "tree_rss_mb": round(sum(map(rss_mb, tree)), 1), "processes": len(tree),
                "scoring_runners": sum("activities.compute.local_runner" in cmdline(pid) for pid in tree),
                "scoring_state_dirs": running_state_dirs(self.temp_root), "mem_available_mb": round(mem_available_mb())}

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            self.samples.append(self.sample())
            if self.samples[-1]["mem_available_mb"] < self.floor_mb:
                self.starved.set()


def peak_activities(log: str) -> int:
    """Most activities running at once, from devhost's begin/end lines (ends first at equal times)."""
    events = sorted((datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f"), kind == "begin")
                    for stamp, kind in ACTIVITY.findall(log))
    running = peak = 0
    for _, begins in events:
        running += 1 if begins else -1
        peak = max(peak, running)
    return peak


@dataclass
class Polling:
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0  # answers other than 200, or none within DevhostProcess.request's 30 s
    jobs: dict[str, dict] = field(default_factory=dict)  # blob -> its job's latest view


def poll_until_done(host, blobs: set[str], began: float, timeout: float, max_requests: int,
                    starved: threading.Event) -> Polling:
    """GET /api/jobs/{id} round-robin over unfinished jobs until every blob's job ended; the job list
    is read every 25th round to learn new ids. Bounded in time and in requests. Each job gets
    `ended_s`: when this loop first saw it ended, in seconds after the uploads began."""
    poll, jobs = Polling(), {}
    deadline = time.monotonic() + timeout
    for round_number in range(max_requests):
        if round_number % 25 == 0:
            listed = host.request("GET", "/api/jobs")[1]["jobs"]
            jobs |= {job["blob"]: job for job in listed if job["blob"] in blobs and job["blob"] not in jobs}
        pending = [job for job in jobs.values() if job["status"] not in ENDED]
        if (len(jobs) == len(blobs) and not pending) or time.monotonic() > deadline or starved.is_set():
            break
        if pending:
            job = pending[round_number % len(pending)]
            started = time.perf_counter()
            try:
                status, view = host.request("GET", f"/api/jobs/{job['id']}")
            except OSError:
                status, view = None, None
            poll.latencies_ms.append((time.perf_counter() - started) * 1000)
            if status == 200:
                jobs[job["blob"]] = view | {"blob": job["blob"]}
            else:
                poll.failures += 1
        for job in jobs.values():
            if job["status"] in ENDED and "ended_s" not in job:
                job["ended_s"] = round(time.monotonic() - began, 1)
        time.sleep(0.1)
    poll.jobs = jobs
    return poll


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else float("nan")


def run(clips: int, frames: int, timeout: float, max_requests: int) -> dict:
    activity_limit = json.loads((ROOT / "host.json").read_text())["extensions"]["durableTask"][
        "maxConcurrentActivityFunctions"]
    with tempfile.TemporaryDirectory(prefix="restyle-load-") as folder, \
            running_stack(Path(folder), **SETTINGS) as stack:
        data = make_clip(Path(folder) / "clip.mp4", frames)
        sampler = Sampler(stack.host.process.pid, stack.temp_root)
        sampler.start()
        began = time.monotonic()
        blobs = {f"load/clip-{n:02d}.mp4" for n in range(clips)}
        for blob in sorted(blobs):
            stack.container("input").upload_blob(blob, data, metadata={"style": "19", **FAST})
        try:
            poll = poll_until_done(stack.host, blobs, began, timeout, max_requests, sampler.starved)
            wall = time.monotonic() - began
            end = sampler.sample()
            end_children = [short_command(pid) for pid in process_tree(stack.host.process.pid)[1:]]
        finally:
            sampler.stop.set()
            stop_scoring(stack.temp_root)
        log = stack.host.log()
    samples = sampler.samples or [end]
    jobs, latencies = poll.jobs, poll.latencies_ms
    completed = [job for job in jobs.values() if job["status"] == "Completed"]
    return {
        "clips": clips, "frames_per_clip": frames, "clip": "160x96, 24 fps, AAC, style 19, compile=false",
        "completed": len(completed), "failed": sum(job["status"] != "Completed" for job in jobs.values()),
        "never_seen": len(blobs) - len(jobs),
        "exact_outputs": sum(job["output"].get("frames") == frames for job in completed),
        "frames_out": sum(job["output"]["frames"] for job in completed), "wall_s": round(wall, 1),
        "completed_at_s": sorted(job["ended_s"] for job in completed if "ended_s" in job),
        "requests": len(latencies), "failed_requests": poll.failures, "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1), "max_ms": round(max(latencies, default=float("nan")), 1),
        "peak_rss_mb": max(s["devhost_rss_mb"] for s in samples), "end_rss_mb": end["devhost_rss_mb"],
        "peak_tree_rss_mb": max(s["tree_rss_mb"] for s in samples), "end_tree_rss_mb": end["tree_rss_mb"],
        "peak_processes": max(s["processes"] for s in samples), "end_processes": end["processes"],
        "end_children": end_children,  # what still ran beside devhost when the last job completed
        "peak_activities": peak_activities(log), "activity_limit": activity_limit,
        "peak_scoring_jobs": max(s["scoring_runners"] for s in samples),
        "peak_scoring_state_dirs": max(s["scoring_state_dirs"] for s in samples),
        "scoring_limit": Settings().local_max_jobs,  # RESTYLE_LOCAL_MAX_JOBS: the rest wait, queued
        "lowest_mem_available_mb": min(s["mem_available_mb"] for s in samples),
        "stopped_for_memory": sampler.starved.is_set(),
        "load_average_at_end": load_average(),
        "samples": samples[::4],
    }


def bounded(sizes: list[dict]) -> dict:
    """Peaks of the two largest bursts side by side: bounded by the app's limits, they match (target
    within 10%); growing with the number of clips, they do not."""
    if len(sizes) < 2:
        return {}
    small, large = sorted(sizes, key=lambda size: size["clips"])[-2:]
    ratios = {key: round(large[key] / small[key], 3) for key in ("peak_rss_mb", "peak_tree_rss_mb", "peak_processes")
              if small.get(key)}
    return {"clips": [small["clips"], large["clips"]], "ratios": ratios,
            "within_10_percent": all(0.9 <= ratio <= 1.1 for ratio in ratios.values())}


def stop_scoring(temp_root: Path) -> None:
    """Scoring jobs outlive devhost by design: cancel any still running, as DELETE /api/jobs does."""
    backend = LocalBackend(BlobStore.from_settings(Settings(temp_root=temp_root)))
    for job in (temp_root / "local-jobs").glob("*"):
        backend.cancel_job(job.name)


def print_table(result: dict) -> None:
    print(f"### {result['clips']} clips")
    rows = [
        ("clips dropped at once / completed / failed",
         f"{result['clips']} / {result['completed']} / {result['failed']}"),
        ("wall time, upload to last completion", f"{result['wall_s']} s"),
        ("first / median completion", f"{result['completed_at_s'][0]} / "
         f"{result['completed_at_s'][len(result['completed_at_s']) // 2]} s" if result["completed_at_s"] else "-"),
        ("GET /api/jobs/{id}: requests (failed), p50 / p95 / max", f"{result['requests']} "
         f"({result['failed_requests']}), {result['p50_ms']} / {result['p95_ms']} / {result['max_ms']} ms"),
        ("devhost RSS peak / end", f"{result['peak_rss_mb']} / {result['end_rss_mb']} MB"),
        ("devhost + children RSS peak / end", f"{result['peak_tree_rss_mb']} / {result['end_tree_rss_mb']} MB"),
        ("processes (devhost + children) peak / end", f"{result['peak_processes']} / {result['end_processes']}"),
        ("activities at once: peak / limit", f"{result['peak_activities']} / {result['activity_limit']}"),
        ("scoring jobs at once: runners / state dirs / limit",
         f"{result['peak_scoring_jobs']} / {result['peak_scoring_state_dirs']} / {result['scoring_limit']}"),
        ("machine MemAvailable, lowest", f"{result['lowest_mem_available_mb']} MB"
         + (" (run stopped: below the floor)" if result["stopped_for_memory"] else "")),
    ]
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


SLOWED = ("info", "exists", "write_json", "delete_prefix")  # the storage calls of POST and DELETE


@contextmanager
def slowed_store(settings: Settings, delay: float) -> Iterator[BlobStore]:
    """The real (Azurite) store, each of SLOWED first sleeping `delay` s, served to the API's handlers."""
    from unittest import mock

    store = BlobStore.from_settings(settings)
    store.ensure_containers()
    store.write_bytes(settings.input_container, "clip.mp4", b"not inspected here", "video/mp4")
    for name in SLOWED:
        real = getattr(store, name)
        setattr(store, name, lambda *a, _real=real, **k: (time.sleep(delay), _real(*a, **k))[1])
    with mock.patch("api.blueprint.app_store", lambda: store):
        yield store


@contextmanager
def management_api(folder: Path, pending: list[str]) -> Iterator[str]:
    """devhost's Durable management API on loopback, over `pending` jobs that never run; its client binding."""
    from api.jobs import ORCHESTRATOR
    from devhost.client_binding import WEBHOOK_PATH, binding_json
    from devhost.engine import Engine
    from devhost.http_server import DevServer, Router
    from devhost.management import ManagementApi
    from devhost.store import Store

    state = Store(folder / "state.db")
    engine = Engine(state, {ORCHESTRATOR: lambda _context: "{}"}, lambda _work: None)
    for instance_id in pending:
        engine.start(ORCHESTRATOR, instance_id, json.dumps({"blob": "clip.mp4"}))
    router = Router()
    router.add(WEBHOOK_PATH, ManagementApi(engine, "restyle").handle)
    server = DevServer(("127.0.0.1", 0), router)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield binding_json(f"http://127.0.0.1:{server.server_address[1]}", "restyle")
    finally:
        server.shutdown()
        state.close()


async def _close_sdk_session() -> None:
    from azure.durable_functions.models.utils import http_utils

    if http_utils._client_session is not None:
        await http_utils._client_session.close()
        http_utils._client_session = None


async def _inline(function, /, *args, **kwargs):
    """asyncio.to_thread without the thread: the blocking call runs on the loop, as before the fix."""
    return function(*args, **kwargs)


def slow_storage_run(connection: str, folder: Path, inline: bool, delay: float, writers: int, rounds: int,
                     max_gets: int, timeout: float) -> dict:
    """One worker loop (devhost's Invoker: coroutines on one loop, as the Python worker runs them);
    `writers` threads each send `rounds` x (POST, DELETE) through it while this thread GETs one job
    every 20 ms. Bounded: at most `max_gets` GETs, and nothing new starts after `timeout` s."""
    from unittest import mock

    import azure.functions as func
    from app_index import app_functions
    from azure.durable_functions.models.utils import http_utils

    from devhost.invoker import Invoker

    handlers = {name: function.get_user_function() for name, function in app_functions().items()}
    tag = uuid.uuid4().hex[:12]
    settings = Settings(storage_connection_string=connection, temp_root=folder / "scratch",
                        **{f"{kind}_container": f"{kind[:3]}{tag}" for kind in
                           ("input", "styles", "work", "output", "rejected")})
    victims = [f"victim-{writer}-{n}" for writer in range(writers) for n in range(rounds)]
    folder.mkdir(parents=True)
    # the SDK's aiohttp session is bound to the loop that made it; each run has a new loop
    http_utils._client_session, http_utils._session_lock = None, asyncio.Lock()
    invoker = Invoker()

    def call(name: str, method: str, body: bytes = b"", route: dict | None = None) -> tuple[int, float]:
        req = func.HttpRequest(method, "http://127.0.0.1:7071/api/jobs", body=body, route_params=route or {},
                               headers={"content-type": "application/json"})
        started = time.perf_counter()
        status = invoker.call(handlers[name], {"req": req, "client": binding}).status_code
        return status, (time.perf_counter() - started) * 1000

    def get() -> tuple[int, float]:
        return call("read_job", "GET", route={"instance_id": "watched"})

    writes: list[tuple[str, int, float]] = []
    deadline = time.monotonic() + timeout

    def write(writer: int) -> None:
        for n in range(rounds):
            if time.monotonic() > deadline:
                return
            post = json.dumps({"blob": "clip.mp4", "style": "19"}).encode()
            writes.append(("POST", *call("create_job", "POST", post)))
            writes.append(("DELETE", *call("delete_job", "DELETE", route={"instance_id": f"victim-{writer}-{n}"})))

    patch = mock.patch("asyncio.to_thread", _inline) if inline else nullcontext()
    try:
        with management_api(folder, ["watched", *victims]) as binding, slowed_store(settings, delay), patch:
            idle = [get() for _ in range(20)]  # before any write: the GET alone
            threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in range(writers)]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            busy: list[tuple[int, float]] = []
            while any(t.is_alive() for t in threads) and len(busy) < max_gets and time.monotonic() < deadline:
                busy.append(get())
                time.sleep(0.02)
            for thread in threads:
                thread.join(timeout + 60)
            wall = time.monotonic() - began
    finally:
        invoker.call(_close_sdk_session, {})
        invoker.stop()
    latencies = [ms for _, ms in busy]
    return {
        "blocking_calls": "inline on the loop (before)" if inline else "asyncio.to_thread (the app)",
        "idle_get_p95_ms": round(percentile([ms for _, ms in idle], 0.95), 1),
        "gets": len(busy), "gets_not_200": sum(status != 200 for status, _ in busy),
        "get_p50_ms": round(percentile(latencies, 0.5), 1), "get_p95_ms": round(percentile(latencies, 0.95), 1),
        "get_max_ms": round(max(latencies, default=float("nan")), 1),
        "writes": len(writes), "writes_not_202": sum(status != 202 for _, status, _ in writes),
        "write_p50_ms": round(percentile([ms for _, _, ms in writes], 0.5), 1), "wall_s": round(wall, 1),
    }


def slow_storage(delay: float, writers: int, rounds: int, max_gets: int, timeout: float) -> dict:
    """GET p95 while POSTs and DELETEs with slow storage are in flight: Azurite and devhost's
    management API on loopback in this process, every storage call of POST and DELETE `delay` s
    slower; once with the blocking calls inline on the loop (before), once in threads (the app)."""
    from tools.azurite import running_azurite

    with tempfile.TemporaryDirectory(prefix="restyle-slow-storage-") as folder, \
            running_azurite(Path(folder) / "azurite") as connection:
        runs = [slow_storage_run(connection, Path(folder) / mode, mode == "inline", delay, writers, rounds,
                                 max_gets, timeout) for mode in ("inline", "threads")]
    return {"delay_s": delay, "slowed": list(SLOWED), "writers": writers, "rounds_per_writer": rounds, "runs": runs}


def print_slow_storage(result: dict) -> None:
    print(f"| storage calls of POST/DELETE +{result['delay_s']} s, {result['writers']} writers | idle GET p95 | "
          "GET p50 / p95 / max under writes | GETs (not 200) | writes (not 202), p50 |\n|---|---|---|---|---|")
    for run in result["runs"]:
        print(f"| {run['blocking_calls']} | {run['idle_get_p95_ms']} ms | {run['get_p50_ms']} / {run['get_p95_ms']} / "
              f"{run['get_max_ms']} ms | {run['gets']} ({run['gets_not_200']}) | {run['writes']} "
              f"({run['writes_not_202']}), {run['write_p50_ms']} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="20", help="burst sizes, comma-separated, one devhost each (20,50,100)")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds before a burst's polling loop gives up (default 300 + 20 a clip: one local "
                             "scoring job at a time finished a clip every ~10 s at 20 clips)")
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="smoke: 2 clips of 6 frames (slow storage: 1 round)")
    parser.add_argument("--output", type=Path, default=None, help=f"default {RESULTS.relative_to(ROOT)} "
                        "(none with --slow-storage)")
    slow = parser.add_argument_group("--slow-storage: GET latency while POSTs and DELETEs wait on slow storage")
    slow.add_argument("--slow-storage", action="store_true")
    slow.add_argument("--delay", type=float, default=0.2, help="seconds added to each storage call of POST/DELETE")
    slow.add_argument("--writers", type=int, default=4, help="threads sending POST then DELETE")
    slow.add_argument("--rounds", type=int, default=5, help="POST+DELETE pairs per writer")
    slow.add_argument("--max-gets", type=int, default=500)
    args = parser.parse_args()
    if args.quick:
        args.clips, args.frames, args.rounds, args.writers, args.max_gets = "2", 6, 1, 2, 40
    if args.slow_storage:
        report = BenchReport(args.output, "load_slow_storage")
        with report.part("slow_storage"):
            timeout = min(args.timeout or 120, 120)
            report.update(slow_storage(args.delay, args.writers, args.rounds, args.max_gets, timeout))
        print(json.dumps(report, indent=1))
        print_slow_storage(report)
        return
    report = BenchReport(quick_path(RESULTS, args.quick, args.output), "load", quick=args.quick, sizes=[],
                         settings={**SETTINGS, "local_processes": "1", "segment_seconds": "1",
                                   "blob_poll_seconds": "0.5", "local_max_jobs": str(Settings().local_max_jobs)})
    for clips in (int(size) for size in args.clips.split(",")):
        with report.part(f"clips={clips}"):
            timeout = args.timeout if args.timeout is not None else 300 + 20 * clips
            report["sizes"].append(run(clips, args.frames, timeout, args.max_requests))
            report["bounded"] = bounded(report["sizes"])
        print_table(report["sizes"][-1])


if __name__ == "__main__":
    main()
