"""`python -m devhost`: run function_app.py locally; stops cleanly on SIGTERM / SIGINT (Ctrl-C)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from . import log
from .host import DEFAULT_STATE_DIR, Host, Options
from .sign_in import DEFAULT_USERS, parse_users
from .timespan import parse_timespan


def parse_options(argv: list[str] | None = None) -> Options:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--app", default=env("DEVHOST_APP", "function_app"), help="module defining the FunctionApp")
    parser.add_argument("--host", default=env("DEVHOST_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("DEVHOST_PORT", "7071")), help="0 picks a free port")
    parser.add_argument("--state-dir", type=Path, default=Path(env("DEVHOST_STATE_DIR", str(DEFAULT_STATE_DIR))),
                        help="where instance state and history (SQLite) live")
    parser.add_argument("--storage", default=env("DEVHOST_STORAGE"),
                        help="storage connection string for the app and its blob triggers (default: "
                             "RESTYLE_STORAGE_CONNECTION_STRING, else Azurite's)")
    parser.add_argument("--activity-workers", type=int, default=env("DEVHOST_ACTIVITY_WORKERS"),
                        help="activities run at once (default: host.json maxConcurrentActivityFunctions)")
    parser.add_argument("--blob-poll-seconds", type=float, default=float(env("DEVHOST_BLOB_POLL_SECONDS", "2")))
    parser.add_argument("--blob-max-attempts", type=int, default=5, help="failed runs before a blob is poison")
    parser.add_argument("--drain-seconds", type=float, default=10.0,
                        help="how long a shutdown waits for running activities")
    parser.add_argument("--function-timeout", default=env("DEVHOST_FUNCTION_TIMEOUT"),
                        help="activity timeout as a TimeSpan (00:30:00) or seconds, -1 for none "
                             "(default: host.json functionTimeout)")
    parser.add_argument("--users", default=env("DEVHOST_USERS", DEFAULT_USERS),
                        help="test users of the App Service sign-in emulation, name[:Role+Role],... "
                             "(empty: sign-in off, as an app without App Service Authentication)")
    args = parser.parse_args(argv)
    try:
        parse_users(args.users)
    except ValueError as error:
        parser.error(f"--users: {error}")
    if args.function_timeout is not None:
        try:
            parse_timespan(args.function_timeout)
        except ValueError as error:
            parser.error(f"--function-timeout: {error}")
    if args.activity_workers is not None and int(args.activity_workers) < 1:
        parser.error("--activity-workers must be at least 1")
    return Options(app=args.app, folder=Path.cwd(), host=args.host, port=args.port, state_dir=args.state_dir,
                   storage=args.storage, activity_workers=int(args.activity_workers) if args.activity_workers else None,
                   blob_poll_seconds=args.blob_poll_seconds, blob_max_attempts=args.blob_max_attempts,
                   drain_seconds=args.drain_seconds, function_timeout=args.function_timeout, users=args.users)


def main(argv: list[str] | None = None) -> int:
    log.configure()
    options = parse_options(argv)
    sys.path.insert(0, str(options.folder))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    host = Host(options)
    try:
        host.start()
    except Exception as error:  # noqa: BLE001 - one clear line instead of a traceback for a bad setup
        print(f"devhost: cannot start: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    while not stop.wait(1.0):
        pass
    host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
