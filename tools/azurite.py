"""A real Azurite blob service from node_modules: on a free port in a throwaway folder (tests, the
demo), or on a fixed port and data folder that outlive it (`restyle up`, outage tests that stop it
and start it again where it was)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from restyle.settings import AZURITE_CONNECTION_STRING

from .process_group import stop_process_group

ROOT = Path(__file__).resolve().parents[1]
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-blob"
DEFAULT_PORT = 10000  # Azurite's own default, which AZURITE_CONNECTION_STRING names


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def connection_string(port: int) -> str:
    return AZURITE_CONNECTION_STRING.replace(f"127.0.0.1:{DEFAULT_PORT}", f"127.0.0.1:{port}")


class Azurite:
    """Azurite's blob service on one port and data folder, stoppable and startable again in place."""

    def __init__(self, folder: Path, port: int | None = None, log_path: Path | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.folder, self.port, self.log_path, self.extra_args = folder, port or free_port(), log_path, extra_args
        self.connection = connection_string(self.port)
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> Azurite:
        if not AZURITE.exists():
            raise RuntimeError("Azurite is not installed: run `make install` (or `npm ci`)")
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", str(self.folder),
                 "--silent", "--skipApiVersionCheck", "--loose", *self.extra_args],
                stdout=log, stderr=log, start_new_session=True)  # Ctrl-C reaches the owner, who stops it
        finally:
            if self.log_path:
                log.close()
        deadline = time.monotonic() + timeout
        while not port_in_use(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Azurite did not start on port {self.port}") from None
            time.sleep(0.1)
        return self

    def stop(self, grace: float = 10.0) -> bool:
        """SIGTERM: Azurite stops serving at once, saves its blob index and exits; the data folder stays
        for a restart. Its exit can wait on open client connections: after `grace` s it is killed (False),
        which loses nothing past 5 s, as no request is served after the SIGTERM and the index autosaves
        every 5 s."""
        if not self.process or self.process.poll() is not None:
            return True
        return stop_process_group(self.process, signal.SIGTERM, grace)


@contextmanager
def running_azurite(folder: Path) -> Iterator[str]:
    """A throwaway Azurite on a free port; its data folder is removed on the way out."""
    azurite = Azurite(folder).start()
    try:
        yield azurite.connection
    finally:
        azurite.stop()
        shutil.rmtree(folder, ignore_errors=True)
