"""Bad inputs end to end: what users get wrong, through the real app on devhost + Azurite.

One devhost (a child process) with low input limits serves the module: every upload is dropped at
once, the HTTP cases are sent while those jobs run, then all jobs are awaited together. Each case
must end in a clear error (the job's `error`, or a 4xx JSON body) or, for valid-but-unusual videos,
Completed with the exact frame count; the upload is kept (rejected/ with its reason, or still in
input/), work/ holds nothing of a rejected job, and the host answers GET /api/jobs afterwards.

The case list is also the table in docs/reliability.md: with BAD_INPUTS_RESULTS=<file> set,
the module writes what each case returned there (`python bench/bad_inputs.py` runs it, prints the table).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import unicodedata
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from app_index import app_functions
from azure.core.exceptions import HttpResponseError
from conftest import run_ffmpeg
from PIL import Image

from activities.compute.local import LocalBackend
from activities.rejection import rejected_name
from activities.work_layout import WorkLayout
from devhost.process import DevhostProcess
from restyle.settings import Settings
from restyle.storage import BlobStore
from tools.azurite import free_port

ENDED = ("Completed", "Failed", "Terminated")
MAX_SECONDS, MAX_PIXELS, MAX_BYTES = 3, 40_000, 200_000  # low limits for this module's devhost
FAST = {"compile": "false"}  # blob metadata, read by the trigger as scoring options
CLIP = "one-frame.mp4"  # a valid upload the HTTP cases name


class Media:
    """The files users upload, made with ffmpeg's lavfi sources: small (160x96, at most 1 s)."""

    def __init__(self, make_clip: Callable[..., Path], folder: Path) -> None:
        self.make_clip, self.folder = make_clip, folder

    def clip(self, **kwargs) -> bytes:
        return self.make_clip(**{"frames": 12, **kwargs}).read_bytes()

    def ffmpeg(self, *args: str) -> bytes:
        path = self.folder / f"made-{uuid.uuid4().hex[:8]}.mp4"
        run_ffmpeg(*args, str(path))
        return path.read_bytes()

    def rotated(self) -> bytes:
        plain = self.make_clip(frames=12)
        return self.ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy")

    @staticmethod
    def png() -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (160, 96), "blue").save(buffer, "PNG")
        return buffer.getvalue()


VFR = ("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=30", "-vf", "setpts='if(lt(N,12),N/30,0.4+(N-12)/10)/TB'",
       "-frames:v", "18", "-fps_mode", "vfr", "-c:v", "libx264")
NOISE = ("-f", "lavfi", "-i", "testsrc2=size=160x96:rate=24,noise=alls=100:allf=t", "-frames:v", "24",
         "-c:v", "libx264", "-qp", "0")


@dataclass(frozen=True)
class Upload:
    """A file dropped into input/: the blob trigger starts its job. `expect`: rejected, completed or refused
    (by storage, before any trigger sees it); `words` must be in the reason, `frames` in the output."""

    case: str
    blob: str
    make: Callable[[Media], bytes]
    expect: str
    words: str = ""
    frames: int = 0
    style: str | None = None


UPLOADS = [
    Upload("zero bytes", "zero.mp4", lambda m: b"", "rejected", "empty file (0 bytes)"),
    Upload("truncated mp4 (first 4000 bytes)", "truncated.mp4", lambda m: m.clip(frames=48)[:4000], "rejected",
           "not a readable video"),
    Upload("PNG image named .mp4", "photo.mp4", lambda m: m.png(), "rejected", "a still image"),
    Upload("text named .mp4", "letter.mp4", lambda m: b"Dear team, the video is attached.\n" * 20, "rejected",
           "not a readable video"),
    Upload("audio only (AAC in MP4)", "song.mp4", lambda m: m.ffmpeg("-f", "lavfi", "-i", "sine=duration=1",
                                                                     "-c:a", "aac"), "rejected", "audio only"),
    Upload(f"over max duration (4 s; limit {MAX_SECONDS} s)", "long.mp4",
           lambda m: m.clip(frames=24, fps="6", size="64x48", audio=False), "rejected",
           f"the limit is {MAX_SECONDS} s"),
    Upload(f"over max pixels (256x192; limit {MAX_PIXELS})", "wide.mp4", lambda m: m.clip(size="256x192"),
           "rejected", f"exceed the limit of {MAX_PIXELS} pixels"),
    Upload(f"over max bytes (lossless noise, ~0.5 MB; limit {MAX_BYTES})", "heavy.mp4", lambda m: m.ffmpeg(*NOISE),
           "rejected", f"the limit is {MAX_BYTES}"),
    Upload("style metadata names a missing picture", "style-missing.mp4", lambda m: m.clip(), "rejected",
           "does not exist", style="absent.jpg"),
    Upload("style metadata names a corrupt picture", "style-corrupt.mp4", lambda m: m.clip(), "rejected",
           "not a readable picture", style="corrupt.jpg"),
    Upload("unknown built-in style in metadata (99)", "style-99.mp4", lambda m: m.clip(), "rejected",
           "out of range", style="99"),
    Upload("style metadata is a URL", "style-url.mp4", lambda m: m.clip(), "rejected", "is a URL; URLs are never "
           "fetched", style="https://example.com/starry.jpg"),
    Upload("name with an empty segment", "clips//double-slash.mp4", lambda m: m.clip(), "rejected",
           "empty, '.' or '..' segment"),
    Upload("name is a URL", "https://example.com/clip.mp4", lambda m: m.clip(), "rejected", "is a URL"),
    Upload("`..` in the name", "clips/../escape.mp4", lambda m: m.clip(), "refused"),
    Upload("1-frame clip", CLIP, lambda m: m.clip(frames=1, audio=False), "completed", frames=1),
    Upload("odd size (161x97, 4:4:4)", "odd-161x97.mp4", lambda m: m.clip(size="161x97", pix_fmt="yuv444p"),
           "completed", frames=12),
    Upload("variable frame rate (30 then 10 fps)", "vfr.mp4", lambda m: m.ffmpeg(*VFR), "completed", frames=18),
    Upload("rotation metadata (90 degrees)", "rotated-90.mp4", Media.rotated, "completed", frames=12),
    Upload("10-bit (yuv420p10le)", "ten-bit.mp4", lambda m: m.clip(pix_fmt="yuv420p10le"), "completed", frames=12),
    Upload("unicode and spaces in the name", "dossier été/vidéo n°1 ✓.mp4", lambda m: m.clip(), "completed",
           frames=12),
    Upload("decomposed unicode name (NFD, as macOS writes)", unicodedata.normalize("NFD", "café crème.mp4"),
           lambda m: m.clip(), "completed", frames=12),
]


@dataclass(frozen=True)
class Call:
    """A request to the HTTP API. `body`: bytes sent as they are, anything else as JSON; `{job}` in the
    path is a job this module POSTed, once it is scoring; `code` is the expected error code (none for a
    2xx), `words` part of its message (of a 2xx: of the JSON body)."""

    case: str
    method: str
    path: str
    body: object
    status: int
    code: str = ""
    words: str = ""


CALLS = [
    Call("malformed JSON", "POST", "/api/jobs", b"{not json", 400, "invalid_json", "not valid JSON"),
    Call("a JSON array, not an object", "POST", "/api/jobs", [CLIP], 400, "invalid_body", "JSON object"),
    Call("blob of the wrong type (number)", "POST", "/api/jobs", {"blob": 7}, 400, "invalid_blob", "name of a video"),
    Call("style of the wrong type (number)", "POST", "/api/jobs", {"blob": CLIP, "style": 19}, 400, "invalid_style",
         "must be a string"),
    Call("options of the wrong type (string)", "POST", "/api/jobs", {"blob": CLIP, "options": "fast"}, 400,
         "invalid_options", "must be a JSON object"),
    Call("unknown field", "POST", "/api/jobs", {"blob": CLIP, "colour": "red"}, 400, "invalid_body", "unknown fields"),
    Call("`..` in the blob name", "POST", "/api/jobs", {"blob": f"../{CLIP}"}, 400, "invalid_blob", "'..' segment"),
    Call("blob given as a URL", "POST", "/api/jobs", {"blob": "https://example.com/clip.mp4"}, 400, "invalid_blob",
         "is a URL; URLs are never fetched"),
    Call("style given as a URL", "POST", "/api/jobs", {"blob": CLIP, "style": "http://example.com/starry.jpg"}, 400,
         "invalid_style", "is a URL; URLs are never fetched"),
    Call("unknown built-in style (99)", "POST", "/api/jobs", {"blob": CLIP, "style": "99"}, 400, "invalid_style",
         "out of range"),
    Call("missing style picture", "POST", "/api/jobs", {"blob": CLIP, "style": "absent.jpg"}, 404, "style_not_found",
         "does not exist"),
    Call("corrupt style picture", "POST", "/api/jobs", {"blob": CLIP, "style": "corrupt.jpg"}, 400, "invalid_style",
         "not a readable picture"),
    Call("video not in input/", "POST", "/api/jobs", {"blob": "nowhere.mp4"}, 404, "blob_not_found", "nowhere.mp4"),
    Call("body over the 64 KiB limit", "POST", "/api/jobs", {"blob": "x" * 70_000}, 413, "body_too_large",
         "the limit is 65536"),
    Call("unknown status filter", "GET", "/api/jobs?status=Sleeping", None, 400, "invalid_status", "Sleeping"),
    Call("unknown job id (GET)", "GET", f"/api/jobs/{'0' * 32}", None, 404, "job_not_found", "no job with id"),
    Call("unknown job id (DELETE)", "DELETE", f"/api/jobs/{'0' * 32}", None, 404, "job_not_found", "no job with id"),
    Call("DELETE a job while it is scoring", "DELETE", "/api/jobs/{job}", None, 202, "",
         '"scoring_jobs_canceled": 1'),
    Call("DELETE the same job again", "DELETE", "/api/jobs/{job}", None, 409, "job_finished", "already finished"),
]


def fast_settings(azurite: str, scratch: Path) -> Settings:
    """Containers of this module's own, low input limits, and the fast job settings of the e2e tests."""
    tag = uuid.uuid4().hex[:8]
    containers = {f"{kind}_container": f"bad{kind}{tag}" for kind in ("input", "styles", "work", "output", "rejected")}
    return Settings(storage_connection_string=azurite, **containers, temp_root=scratch / "work",
                    max_duration_seconds=MAX_SECONDS, max_pixels=MAX_PIXELS, max_bytes=MAX_BYTES,
                    poll_initial_seconds=0.5, poll_max_seconds=1, local_processes=1, segment_seconds=1,
                    scoring_workers=1, segments_per_worker=2, activity_retry_attempts=2, activity_retry_seconds=1)


def send(host: DevhostProcess, method: str, path: str, body: object = None) -> tuple[int, dict | None]:
    """(status, JSON body) for one request; bytes go out as they are."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(host.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return status, json.loads(raw) if raw else None


def serving(host: DevhostProcess) -> int:
    return send(host, "GET", "/api/jobs")[0]


def drop(store: BlobStore, upload: Upload, data: bytes, folder: Path) -> str | None:
    """Upload with the fast options (and the case's style); the storage error's first line if refused."""
    path = folder / f"upload-{uuid.uuid4().hex[:8]}"
    path.write_bytes(data)
    metadata = FAST | ({"style": upload.style} if upload.style else {})
    try:
        store.upload_file(store.settings.input_container, upload.blob, path, metadata=metadata)
    except HttpResponseError as error:
        return str(error).splitlines()[0]
    return None


def await_jobs(host: DevhostProcess, blobs: set[str], skip: str, timeout: float = 360) -> dict[str, dict]:
    """Each blob's job once it has ended (polling GET /api/jobs; bounded by `timeout`)."""
    ended: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(ended) < len(blobs) and time.monotonic() < deadline:
        for job in send(host, "GET", "/api/jobs")[1]["jobs"]:
            if job["blob"] in blobs and job["id"] != skip and job["status"] in ENDED:
                ended[job["blob"]] = job
        time.sleep(1)
    return ended


def upload_outcome(store: BlobStore, upload: Upload, data: bytes, job: dict | None, refused: str | None) -> dict:
    settings = store.settings
    target = rejected_name(upload.blob)
    record = store.read_json(settings.rejected_container, f"{target}.reason.json") if store.exists(
        settings.rejected_container, f"{target}.reason.json") else None
    copy = store.download_file(settings.rejected_container, target, settings.temp_root / "check") if record else None
    if refused:
        result = f"upload refused by storage: {refused}"
    elif job is None:
        result = "no job ended in time"
    else:
        result = job["status"] + (f": {job['error']}" if job.get("error") else f", frames: {job['output']['frames']}")
    return {"result": result, "status": job and job["status"], "error": job and job.get("error"),
            "frames": job and (job.get("output") or {}).get("frames"),
            "in_input": upload.blob in set(store.list_names(settings.input_container)),
            "reason": record and record["reason"],
            "copy_intact": copy is not None and _sha(copy.read_bytes()) == _sha(data),
            "work_left": len(list(store.list_names(settings.work_container, WorkLayout(job["id"]).prefix)))
            if job else None}


def work_left_after_removal(store: BlobStore, job_id: str, seconds: float = 60.0) -> int:
    """Blobs left under a deleted job's work/<id>/ once its removal orchestration (started by the
    DELETE, orchestrators/remove_work.py) has had up to `seconds` to run."""
    deadline = time.monotonic() + seconds
    while (left := len(list(store.list_names(store.settings.work_container, WorkLayout(job_id).prefix)))) and (
            time.monotonic() < deadline):
        time.sleep(0.5)
    return left


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def call_outcome(host: DevhostProcess, call: Call, job_id: str) -> dict:
    status, body = send(host, call.method, call.path.replace("{job}", job_id), call.body)
    error = body.get("error") if isinstance(body, dict) else None
    message = error["message"] if error else json.dumps(body)
    result = f"{status} {error['code']}: {message}" if error else f"{status} {message}"
    return {"result": result, "http_status": status, "code": error and error["code"], "message": message,
            "serving": serving(host)}


def wait_until_scoring(host: DevhostProcess, job_id: str, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while send(host, "GET", f"/api/jobs/{job_id}")[1]["stage"] != "scoring":
        assert time.monotonic() < deadline, f"job {job_id} did not reach scoring"
        time.sleep(0.5)


def stop_scoring(settings: Settings, store: BlobStore) -> None:
    """Scoring jobs run detached from devhost: stop any still running when the module ends."""
    jobs = settings.temp_root / "local-jobs"
    for job in jobs.iterdir() if jobs.exists() else ():
        LocalBackend(store).cancel_job(job.name)


@pytest.fixture(scope="module")
def outcomes(azurite, make_clip, tmp_path_factory) -> dict[str, dict]:
    scratch = tmp_path_factory.mktemp("bad-inputs")
    settings = fast_settings(azurite, scratch)
    store = BlobStore.from_settings(settings)
    store.ensure_containers()
    (scratch / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    store.upload_file(settings.styles_container, "corrupt.jpg", scratch / "corrupt.jpg")
    media = Media(make_clip, scratch)
    files = {upload.case: upload.make(media) for upload in UPLOADS}
    host = DevhostProcess(free_port(), scratch / "state", azurite, scratch / "devhost.log",
                          env=settings.as_environment(), extra_args=("--blob-poll-seconds", "0.5")).start()
    try:
        refused = {upload.case: drop(store, upload, files[upload.case], scratch) for upload in UPLOADS}
        status, posted = send(host, "POST", "/api/jobs", {"blob": CLIP, "style": "3", "options": {"compile": False}})
        assert status == 202, posted
        found = {}
        for call in CALLS:
            if "{job}" in call.path:
                wait_until_scoring(host, posted["id"])
            found[call.case] = call_outcome(host, call, posted["id"])
        jobs = await_jobs(host, {upload.blob for upload in UPLOADS if not refused[upload.case]}, posted["id"])
        for upload in UPLOADS:
            found[upload.case] = upload_outcome(store, upload, files[upload.case], jobs.get(upload.blob),
                                                refused[upload.case]) | {"serving": serving(host)}
        found["DELETE a job while it is scoring"]["work_left"] = work_left_after_removal(store, posted["id"])
    finally:
        host.stop()
        stop_scoring(settings, store)
    if os.environ.get("BAD_INPUTS_RESULTS"):
        write_results(Path(os.environ["BAD_INPUTS_RESULTS"]), found)
    return found


def write_results(path: Path, found: dict[str, dict]) -> None:
    rows = [{"via": "upload", "case": case.case, "expected": _public(asdict(case)), "returned": found[case.case]}
            for case in UPLOADS]
    rows += [{"via": "http", "case": case.case, "expected": _public(asdict(case)), "returned": found[case.case]}
             for case in CALLS]
    path.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


def _public(case: dict) -> dict:
    case.pop("make", None)
    if isinstance(case.get("body"), bytes | list | dict):
        case["body"] = case["body"].decode() if isinstance(case["body"], bytes) else json.dumps(case["body"])[:80]
    return case


@pytest.mark.parametrize("upload", UPLOADS, ids=lambda upload: upload.case)
def test_an_upload_is_rejected_with_its_reason_or_completes(upload: Upload, outcomes):
    got = outcomes[upload.case]
    assert got["serving"] == 200, got
    if upload.expect == "refused":  # `..` never reaches the trigger: the HTTP client resolves dot segments
        assert got["result"].startswith("upload refused by storage") and not got["in_input"], got
        return
    assert got["work_left"] == 0, got  # rejected: nothing was written; completed: cleaned up
    if upload.expect == "completed":
        assert (got["status"], got["frames"], got["in_input"], got["reason"]) == ("Completed", upload.frames, True,
                                                                                   None), got
        return
    assert got["status"] == "Failed" and "input rejected" in got["error"] and upload.words in got["error"], got
    assert upload.words in got["reason"] and got["copy_intact"] and not got["in_input"], got


@pytest.mark.parametrize("call", CALLS, ids=lambda call: call.case)
def test_a_request_is_answered_with_its_status_and_error_code(call: Call, outcomes):
    got = outcomes[call.case]
    assert (got["http_status"], got["code"] or "") == (call.status, call.code), got
    assert call.words in got["message"], got
    assert got["serving"] == 200, got
    assert got.get("work_left", 0) == 0, got  # a deleted job's work/ is removed, late activities included


def test_the_reliability_table_renders_from_this_run(outcomes, tmp_path):
    """docs/reliability.md's bad-input table (bench/bad_inputs.py) reads what this module writes."""
    from bench.bad_inputs import table

    write_results(tmp_path / "bad_inputs.json", outcomes)
    rendered = table(json.loads((tmp_path / "bad_inputs.json").read_text()))
    assert all(f"| {case.case} |" in rendered for case in [*UPLOADS, *CALLS])
    assert rendered.count("\n") == len(UPLOADS) + len(CALLS) + 1


def test_every_http_function_leaves_the_caller_to_the_app():
    """ANONYMOUS at the host: the host's key check would refuse people signed in through App Service
    Authentication, so every handler asks api.callers instead (tests/test_api_callers.py calls each one
    with nobody signed in and no key, and gets 401)."""
    http = {name: binding for name, function in app_functions().items()
            for binding in json.loads(function.get_function_json())["bindings"] if binding["type"] == "httpTrigger"}
    assert set(http) == {"create_job", "read_job", "read_jobs", "delete_job", "read_job_downloads", "create_upload",
                         "jobs_page", "forecast", "read_me", "read_job_forecast", "read_job_partitions"}
    assert {binding["authLevel"] for binding in http.values()} == {"ANONYMOUS"}
