"""`restyle up`: the local stack (Azurite + devhost, the Function App run locally) in the foreground
until Ctrl-C, with all of its state in one folder, so that a later `restyle up` on the same folder
carries on with the same blobs and jobs (devhost replays its SQLite history; detached local scoring
runs resume where their finished segments end).

Azurite and devhost listen on their usual ports (10000 and 7071), which is where the other
`restyle` commands look by default.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from azure.storage.blob import CorsRule

from api.tickets import CORS_ALLOWED_HEADERS, CORS_METHODS
from devhost.process import DevhostProcess
from restyle.settings import Settings
from restyle.storage import BlobStore
from tools.azurite import DEFAULT_PORT, Azurite, port_in_use

from .target import DEFAULT_API_URL, CliError

DEFAULT_API_PORT = 7071
# A local stack answers quickly: poll a scoring run every 1-3 s rather than backing off to 60 s.
LOCAL_SETTINGS = {"RESTYLE_POLL_INITIAL_SECONDS": "1", "RESTYLE_POLL_MAX_SECONDS": "3"}


def default_state_dir() -> Path:
    return Path(os.environ.get("RESTYLE_STATE_DIR") or Path.home() / ".restyle")


@dataclass
class Stack:
    state: Path
    api_port: int = DEFAULT_API_PORT
    storage_port: int = DEFAULT_PORT

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def exports(self, connection: str) -> list[str]:
        """What another shell needs to reach this stack when it is not on the default ports."""
        lines = []
        if self.api_url != DEFAULT_API_URL:
            lines.append(f"export RESTYLE_API_URL={self.api_url}")
        if self.storage_port != DEFAULT_PORT:
            lines.append(f"export RESTYLE_STORAGE_CONNECTION_STRING='{connection}'")
        return lines


def allow_page_uploads(store: BlobStore, api_url: str) -> None:
    """CORS on Azurite's blob service: the page (served by devhost) PUTs uploads and loads previews
    straight from storage, a different origin (in Azure, infra/app/storage.bicep sets the same)."""
    origins = [api_url, api_url.replace("127.0.0.1", "localhost")]
    rule = CorsRule(origins, list(CORS_METHODS), allowed_headers=list(CORS_ALLOWED_HEADERS),
                    exposed_headers=["etag", "x-ms-request-id"], max_age_in_seconds=3600)
    store.service.set_service_properties(cors=[rule])


def run_stack(stack: Stack, say=print, stop: threading.Event | None = None) -> int:
    """Start both, print where they are, and wait for Ctrl-C/SIGTERM (or `stop`); 1 if a part dies."""
    if os.environ.get("RESTYLE_STORAGE_ACCOUNT_URL"):
        raise CliError("RESTYLE_STORAGE_ACCOUNT_URL is set (Azure); `restyle up` runs the local stack on Azurite: "
                       "unset it in this shell")
    for port, what, flag in ((stack.api_port, "the API", "--port"), (stack.storage_port, "Azurite", "--storage-port")):
        if port_in_use(port):
            raise CliError(f"port {port} for {what} is in use (is `restyle up` already running?); choose another "
                           f"with {flag}")
    stack.state.mkdir(parents=True, exist_ok=True)
    stop = stop or _stop_on_signals()
    azurite = Azurite(stack.state / "azurite", stack.storage_port, log_path=stack.state / "azurite.log")
    host = None
    try:
        try:
            azurite.start()
        except RuntimeError as error:  # not installed, or it exited at once
            raise CliError(f"{error}; its log: {azurite.log_path}") from None
        store = BlobStore.from_settings(Settings(storage_connection_string=azurite.connection,
                                                 storage_account_url=None))
        store.ensure_containers()
        allow_page_uploads(store, stack.api_url)
        env = {**LOCAL_SETTINGS, "RESTYLE_TEMP_ROOT": str(stack.state / "work"),
               "RESTYLE_STORAGE_CONNECTION_STRING": azurite.connection}
        host = DevhostProcess(stack.api_port, stack.state / "devhost", azurite.connection, stack.state / "devhost.log",
                              env=env, extra_args=("--blob-poll-seconds", "1"))
        try:
            host.start()
        except RuntimeError:
            raise CliError(f"devhost did not start; its log: {host.log_path}") from None
        _announce(stack, azurite.connection, say)
        while not stop.wait(1.0):
            for process, name, log in ((host.process, "devhost", host.log_path),
                                       (azurite.process, "Azurite", azurite.log_path)):
                if process.poll() is not None:
                    say(f"restyle: {name} stopped unexpectedly (exit {process.returncode}); its log: {log}")
                    return 1
        say("stopping (running jobs carry on at the next `restyle up` with this state folder)")
        return 0
    finally:
        if host is not None:
            host.stop()
        azurite.stop()


def _announce(stack: Stack, connection: str, say) -> None:
    say(f"Restyle is up; state in {stack.state}")
    say(f"  jobs page  {stack.api_url}/api/page (or signed in as a test user: "
        f"{stack.api_url}/.auth/login/aad?post_login_redirect_uri=/api/page)")
    say(f"  API        {stack.api_url}/api/jobs")
    say(f"  storage    Azurite on 127.0.0.1:{stack.storage_port}")
    say(f"  logs       {stack.state / 'devhost.log'}, {stack.state / 'azurite.log'}")
    for line in stack.exports(connection):
        say(f"  in another shell: {line}")
    say("Submit a video with: restyle submit some.mp4 --follow --download out/")
    say("Ctrl-C stops the stack.")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop
