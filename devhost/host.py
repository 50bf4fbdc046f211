"""devhost put together: app catalog, store, engine, workers, blob polling and the HTTP port.

Start order matters: the environment is prepared before the app is imported (its settings are read
at import), and work recovered from the store is handed out before new requests are taken.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from restyle.principal import SIGN_IN_ENABLED
from restyle.settings import DATA_CONNECTION, Settings

from . import log
from .activity_io import invoke_activity
from .admin import AdminApi
from .app_http import AppHttp
from .attempts import ActivityRunner
from .blob_trigger import BlobTrigger
from .catalog import Catalog
from .client_binding import WEBHOOK_PATH, binding_json
from .config import HostConfig, load_local_settings
from .engine import Engine, utcnow
from .episode import RunActivity, StartTimer, Work
from .history import iso, timer_fired
from .http_server import DevServer, Router
from .invoker import Invoker
from .management import ManagementApi
from .scratch import MB, ScratchMeter
from .sign_in import DEFAULT_USERS, SignIn, parse_users, session_key
from .store import Store
from .timespan import parse_timespan
from .workers import ActivityPool, TimerWheel

DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / "restyle-devhost"


@dataclass(frozen=True)
class Options:
    app: str = "function_app"
    folder: Path = field(default_factory=Path.cwd)  # where host.json and local.settings.json are
    host: str = "127.0.0.1"
    port: int = 7071  # 0: any free port
    state_dir: Path = DEFAULT_STATE_DIR
    storage: str | None = None  # the app's storage and its blob trigger's connection (Azurite's, locally)
    activity_workers: int | None = None  # default: host.json maxConcurrentActivityFunctions
    blob_poll_seconds: float = 2.0
    blob_max_attempts: int = 5
    drain_seconds: float = 10.0
    function_timeout: str | None = None  # TimeSpan text or seconds, `-1` unbounded; default: host.json
    users: str = DEFAULT_USERS  # App Service sign-in's test users (devhost/sign_in.py); empty: sign-in off


class Host:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.url = ""

    def start(self) -> None:
        options = self.options
        if options.storage:  # set before local.settings.json is read, so it wins over the file
            os.environ["RESTYLE_STORAGE_CONNECTION_STRING"] = os.environ[DATA_CONNECTION] = options.storage
        applied = load_local_settings(options.folder / "local.settings.json")
        users = parse_users(options.users)
        if users:  # as App Service tells an app that its sign-in is on; before the app is imported
            os.environ[SIGN_IN_ENABLED] = "True"
        else:
            os.environ.pop(SIGN_IN_ENABLED, None)
        config = HostConfig.load(options.folder)
        self.catalog = catalog = Catalog.load(options.app)
        self.store = Store(options.state_dir / "devhost.sqlite")
        self.invoker = Invoker()
        self.engine = Engine(self.store, {name: f.fn for name, f in catalog.orchestrators.items()}, self._dispatch)
        settings = Settings()  # after local.settings.json: RESTYLE_TEMP_ROOT and RESTYLE_SCRATCH_LIMIT_MB
        limit = None if settings.scratch_limit_mb is None else int(settings.scratch_limit_mb * MB)
        self.meter = ScratchMeter(settings.temp_root, limit, on_exceeded=self._scratch_full).start()
        timeout = config.function_timeout if options.function_timeout is None else parse_timespan(
            options.function_timeout)
        self.activities = ActivityRunner(self._invoke_activity, self._function_name, timeout, utcnow, self.meter)
        self.pool = ActivityPool(options.activity_workers or config.max_concurrent_activities, self._run_activity)
        self.timers = TimerWheel(self._fire_timer)
        router = Router()
        # sign-in off: what a client sends passes on, as through App Service without authentication (the
        # app then ignores principal headers: WEBSITE_AUTH_ENABLED is unset)
        front = SignIn(users, session_key(options.state_dir)).wrap(router) if users else router
        self.server = DevServer((options.host, options.port), front)
        self.url = f"http://{options.host}:{self.server.server_port}"
        client_json = binding_json(self.url, config.hub_name)
        self.blob_trigger = BlobTrigger(catalog.blobs, self.store, self.invoker, client_json,
                                        options.blob_poll_seconds, options.blob_max_attempts)
        router.add(WEBHOOK_PATH, ManagementApi(self.engine, config.hub_name).handle)
        router.add("/admin", AdminApi(catalog.names(), self.blob_trigger, self.limits).handle)
        router.add(f"/{config.route_prefix}" if config.route_prefix else "",
                   AppHttp(catalog.http, config.route_prefix, self.invoker, client_json).handle)
        recovered = self.engine.recover()
        self._dispatch(recovered)
        self.engine.start_dispatcher()
        self._serving = threading.Thread(target=self.server.serve_forever, name="devhost-http", daemon=True)
        self._serving.start()
        self.blob_trigger.start()
        log.event("host.started", url=self.url, state=str(self.store.path), hub=config.hub_name,
                  sign_in=",".join(users) or None,
                  functions=",".join(catalog.names()), recovered=len(recovered),
                  local_settings=",".join(applied) or None, function_timeout=timeout,
                  scratch_root=str(settings.temp_root), scratch_limit_mb=settings.scratch_limit_mb)

    def stop(self) -> None:
        """Stop taking work, wait a bounded time for running activities, then close the store."""
        log.event("host.stopping")
        self.blob_trigger.stop()
        self.server.shutdown()
        self.server.server_close()
        self.engine.stop()
        self.timers.stop()
        drained = self.pool.drain(self.options.drain_seconds)
        self.pool.stop()
        self.meter.stop()
        log.event("scratch.peak", **self.meter.status())
        self.invoker.stop()
        if drained:
            self.store.close()
        log.event("host.stopped", level=logging.INFO if drained else logging.WARNING,
                  note=None if drained else "activities still running were abandoned; they re-run on the next start")

    def _dispatch(self, work: list[Work]) -> None:
        for item in work:
            if isinstance(item, RunActivity):
                self.pool.submit(item)
            else:
                self.timers.schedule(item)

    def limits(self) -> dict:
        """functionTimeout, activities running and abandoned, and scratch use (admin status)."""
        return {"functionTimeout": self.activities.timeout, "activities": self.activities.status(),
                "scratch": self.meter.status()}

    def _run_activity(self, work: RunActivity) -> None:
        self.engine.deliver(work.instance_id, work.execution_id, self.activities.run(work))

    def _invoke_activity(self, work: RunActivity) -> dict:
        return invoke_activity(self.catalog.activities.get(work.name), self.invoker, work, utcnow)

    def _function_name(self, activity: str) -> str:
        function = self.catalog.activities.get(activity)
        return function.name if function else activity

    def _scratch_full(self, error: OSError) -> None:
        log.event("scratch.exceeded", logging.WARNING, error=str(error), **self.activities.status())
        self.activities.fail_running(error)

    def _fire_timer(self, timer: StartTimer) -> None:
        self.engine.deliver(timer.instance_id, timer.execution_id, timer_fired(utcnow(), timer.task_id,
                                                                               iso(timer.fire_at)))

