"""The `restyle` command against a real local stack: `restyle up` in a child process (Azurite +
devhost + the local scoring backend), the other commands called as a user calls them (in process,
with the environment a second shell would have), tiny lavfi clips so each job takes seconds.

Azure's side is an HTTP server of our own standing in for the Function App (the exact header the
key travels in, the 401 answer) and the storage client the command builds for an account URL.
"""

from __future__ import annotations

import http.server
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import ClassVar

import numpy as np
import pytest
from azure.identity import DefaultAzureCredential
from e2e_support import wait_for
from PIL import Image
from restyle_up import ROOT, RestyleUp, ctrl_c_reaches_it

from scoring_job.probe import probe_video
from tools.cli.follow import Display, Watched
from tools.cli.main import main
from tools.cli.styles import LABEL_HEIGHT
from tools.cli.submit import parse_options
from tools.cli.target import Target

CLIP = {"frames": 48, "size": "160x96"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    up = RestyleUp(tmp_path_factory.mktemp("restyle") / "state").start()
    yield up
    up.close()


@pytest.fixture
def shell(stack, monkeypatch):
    """The environment of a shell that talks to the stack (and nothing else from this one)."""
    for key in [key for key in os.environ if key.startswith("RESTYLE_")]:
        monkeypatch.delenv(key)
    for key, value in stack.client_env().items():
        monkeypatch.setenv(key, value)
    return stack


def restyle(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_follow_download_then_status_and_list(shell, make_clip, tmp_path, capsys):
    clip = make_clip(**CLIP)
    code, out, err = restyle(capsys, "submit", clip, "--style", "3", "--scale", "0.5", "--option", "compile=false",
                             "--follow", "--download", tmp_path / "out")
    assert code == 0, err
    job_id = re.search(r"job ([0-9a-f]{32})", out).group(1)
    assert f"{clip.name} -> input/{clip.name}: job {job_id}" in out
    stages = re.findall(rf"\[{job_id}\]: \w+ stage=(\w+)", err)  # one line per change on a non-terminal
    assert "scoring" in stages and stages[-1] == "done", err
    assert re.search(rf"\[{job_id}\]: Running stage=scoring segments=\d/6", err), err
    video, preview = tmp_path / "out" / f"{clip.stem}.styled.mp4", tmp_path / "out" / f"{clip.stem}.styled.preview.jpg"
    assert f"saved {video}" in out and f"saved {preview}" in out
    facts = probe_video(video)
    assert (facts.frame_count, facts.width, facts.height, facts.has_audio) == (48, 80, 48, True)  # scale 0.5
    assert preview.read_bytes()[:2] == b"\xff\xd8"  # a JPEG

    code, out, _ = restyle(capsys, "status", job_id)
    assert code == 0 and "Completed stage=done" in out and f"output   output/{clip.stem}.styled.mp4" in out
    code, out, _ = restyle(capsys, "list", "--status", "Completed")
    assert code == 0 and job_id in out
    code, out, _ = restyle(capsys, "list", "--status", "Failed")
    assert (code, out.strip()) == (0, "no jobs with status Failed")

    # the same file again: a new name beside the first upload, never over it
    code, out, err = restyle(capsys, "submit", clip, "--option", "compile=false")
    assert code == 0, err
    assert f"-> input/{clip.stem}-2{clip.suffix}" in out
    second = re.search(r"job ([0-9a-f]{32})", out).group(1)
    wait_for(lambda: restyle(capsys, "status", second)[0] == 0, 30, "the blob trigger to start the second job")
    code, out, _ = restyle(capsys, "cancel", second)
    assert code == 0 and f"canceled job {second}" in out
    code, _, err = restyle(capsys, "cancel", job_id)
    assert code == 1 and err.strip() == f"restyle: job {job_id} has already finished (Completed)"


def test_a_painting_here_is_uploaded_as_the_style(shell, make_clip, real_frame, tmp_path, capsys):
    painting = tmp_path / "painting.png"
    Image.fromarray(real_frame(40, (96, 64))).save(painting)
    code, out, err = restyle(capsys, "submit", make_clip(frames=12, size="96x64"), "--style", painting,
                             "--option", "compile=false", "--follow")
    assert code == 0, err
    store = Target.from_environment().store
    assert store.read_bytes("styles", "painting.png") == painting.read_bytes()
    job_id = re.search(r"job ([0-9a-f]{32})", out).group(1)
    assert f"[{job_id}]: Completed (12 frames)" in out
    Image.fromarray(real_frame(80, (96, 64))).save(painting)  # another picture under the same name
    code, _, err = restyle(capsys, "submit", make_clip(frames=12, size="96x64"), "--style", painting)
    assert code == 2 and "styles/painting.png holds another picture; rename" in err


def test_a_rejected_upload_ends_with_its_reason_and_exit_1(shell, tmp_path, capsys):
    bogus = tmp_path / "notes.mp4"
    bogus.write_bytes(b"not a video at all " * 200)
    code, _, err = restyle(capsys, "submit", bogus, "--follow")
    assert code == 1
    assert re.search(r"notes\.mp4 \[\w+\]: Failed: input rejected: .+", err), err


@pytest.mark.parametrize(("argv", "exit_code", "message"), [
    (["submit", "missing.mp4"], 3, "restyle: no such file: missing.mp4"),
    (["submit", "{clip}", "--style", "26"], 2, "restyle: unknown style '26': style index 26 out of range"),
    (["submit", "{clip}", "--option", "speed=fast"], 2, "restyle: invalid options: speed: Extra inputs"),
    (["submit", "{clip}", "--scale", "2"], 2, "restyle: invalid options: scale: Input should be less than"),
    (["submit", "{clip}", "--style", "starry.jpg"], 2,
     "restyle: style image styles/starry.jpg does not exist and no file starry.jpg is here"),
    (["status", "0123456789abcdef0123456789abcdef"], 1,
     "restyle: no job with id '0123456789abcdef0123456789abcdef'"),
    (["list", "--status", "Done"], 1, "restyle: unknown status ['Done']"),
])
def test_errors_are_one_line_with_a_non_zero_exit(shell, make_clip, capsys, argv, exit_code, message):
    clip = make_clip(**CLIP)
    code, _, err = restyle(capsys, *(arg.replace("{clip}", str(clip)) for arg in argv))
    assert code == exit_code
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_stack_that_is_not_running_is_named(monkeypatch, make_clip, capsys):
    from tools.azurite import connection_string, free_port

    monkeypatch.setenv("RESTYLE_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RESTYLE_STORAGE_CONNECTION_STRING", connection_string(free_port()))
    code, _, err = restyle(capsys, "list")
    assert code == 1 and "cannot reach the Restyle API" in err and "start it with `restyle up`" in err
    code, _, err = restyle(capsys, "submit", make_clip(**CLIP))
    assert code == 1 and "cannot reach blob storage (Azurite at http://127.0.0.1:" in err and "restyle up" in err
    assert err.count("\n") == 1


class _FunctionApp(http.server.BaseHTTPRequestHandler):
    """Answers like the Function App (RESTYLE_AUTH=required) to a caller who is not signed in: 401 without the
    right key."""

    seen: ClassVar[list[dict]] = []

    def do_GET(self) -> None:
        self.seen.append({"key": self.headers.get("x-functions-key"), "path": self.path})
        ok = self.headers.get("x-functions-key") == "the-key"
        body = b'{"jobs": []}' if ok else b""
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_against_azure_the_key_travels_in_its_header_and_a_401_says_what_to_set(monkeypatch, capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FunctionApp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("RESTYLE_API_URL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.delenv("RESTYLE_FUNCTION_KEY", raising=False)
        code, _, err = restyle(capsys, "list")
        assert code == 1 and "refused the request (401): set RESTYLE_FUNCTION_KEY" in err
        monkeypatch.setenv("RESTYLE_FUNCTION_KEY", "the-key")
        code, out, _ = restyle(capsys, "list")
        assert (code, out.strip()) == (0, "no jobs")
        assert _FunctionApp.seen[-1] == {"key": "the-key", "path": "/api/jobs"}  # a header, never ?code= in the URL
    finally:
        server.shutdown()


def test_against_azure_storage_is_reached_with_an_identity_never_a_key(monkeypatch, capsys):
    monkeypatch.delenv("RESTYLE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.setenv("RESTYLE_STORAGE_ACCOUNT_URL", "https://stdataexample.blob.core.windows.net")
    target = Target.from_environment()
    assert isinstance(target.store.service.credential, DefaultAzureCredential)
    assert target.store.service.url.startswith("https://stdataexample.blob.core.windows.net")

    monkeypatch.delenv("RESTYLE_STORAGE_ACCOUNT_URL")
    monkeypatch.setenv("RESTYLE_STORAGE_CONNECTION_STRING",
                       "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=" + "A" * 20 + ";")
    code, _, err = restyle(capsys, "list")
    assert code == 1 and "is for Azurite only" in err and "az login" in err


def test_options_pass_through_by_name():
    """Any scoring option field is accepted as is (a new field needs no change in the command)."""
    assert parse_options(["crf=20", "preset=medium", "compile=false"], "0.25") == {
        "crf": "20", "preset": "medium", "compile": "false", "scale": "0.25"}


def test_ctrl_c_while_following_leaves_the_job_running_and_it_survives_a_restart_of_the_stack(
        shell, make_clip, tmp_path, capsys):
    clip = make_clip(frames=72, size="160x96")
    follower = subprocess.Popen([sys.executable, "-m", "tools.cli", "submit", str(clip), "--option", "compile=false",
                                 "--follow"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ}, preexec_fn=ctrl_c_reaches_it)
    lines = []
    for line in follower.stdout:
        lines.append(line)
        if "stage=scoring" in line:
            break
    follower.send_signal(signal.SIGINT)
    rest, _ = follower.communicate(timeout=30)
    output = "".join(lines) + rest
    assert follower.returncode == 130, output
    job_id = re.search(r"job ([0-9a-f]{32})", output).group(1)
    assert f"stopped following; the jobs keep running. Follow again with: restyle status {job_id} --follow" in output

    code, out, _ = restyle(capsys, "status", job_id)
    assert code == 0 and "Running" in out  # still running without anybody following

    assert shell.stop() == 0  # Ctrl-C on `restyle up` mid-job
    assert "stopping (running jobs carry on at the next `restyle up`" in shell.output()
    time.sleep(1)
    shell.start()  # the same state folder and ports
    code, out, err = restyle(capsys, "status", job_id, "--download", tmp_path / "out")
    assert code == 0, err
    assert probe_video(tmp_path / "out" / f"{clip.stem}.styled.mp4").frame_count == 72


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_job_gets_its_own_progress_bar():
    stream = _Terminal()
    first, second = Watched("a" * 32, "first.mp4"), Watched("b" * 32, "second-clip.mp4")
    display = Display([first, second], stream)
    first.job = {"status": "Running", "stage": "scoring",
                 "progress": {"segments_done": 3, "segments_total": 6, "frames_per_second": 12.5, "eta_seconds": 75}}
    display.show(first)
    display.show(second, waiting="waiting for the blob trigger to start the job")
    display.close()
    screen = stream.getvalue()
    assert re.search(r"first\.mp4\s+50%\|[^|]+\| 3/6 segments, scoring · 12\.5 frames/s · ETA 1m15s", screen), screen
    assert "\rfirst.mp4" + " " * 8 + "50%" in screen  # padded to len("second-clip.mp4"), then " 50%"
    assert re.search(r"second-clip\.mp4 +0%\|[^|]*\| 0/0 segments, waiting for the blob trigger", screen), screen


def test_styles_writes_a_contact_sheet_of_the_26_styles(make_clip, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    code, out, _ = restyle(capsys, "styles", "--frame", make_clip(frames=24, size="160x96"), "--at", "0.5",
                           "--width", "64", "-o", sheet)
    assert code == 0 and f"wrote {sheet}" in out
    image = np.asarray(Image.open(sheet).convert("RGB"))
    tile_h = 64 * 96 // 160 + LABEL_HEIGHT
    assert image.shape == (5 * tile_h, 6 * 64, 3)  # the original + 26 styles, 6 a row
    tiles = [image[(n // 6) * tile_h:(n // 6) * tile_h + 38, (n % 6) * 64:(n % 6 + 1) * 64].astype(int)
             for n in range(27)]
    differences = [np.abs(tiles[0] - tile).mean() for tile in tiles[1:]]
    assert min(differences) > 10  # every style changes the frame
    assert len({tile.tobytes() for tile in tiles}) == 27  # and no two styles look the same
    assert restyle(capsys, "styles", "--frame", tmp_path / "missing.mp4")[0] == 3
