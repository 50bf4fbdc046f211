"""Blob triggers by polling the container, with receipts per (function, blob, ETag) as the host keeps.

A blob fires once per ETag (a re-upload fires again). A blob whose function keeps raising is given
up after `max_attempts` and logged as poison, as the host does after five dequeues. The function
gets a real `azure.storage.blob.BlobClient` for the blob (what the SDK-type binding
`azurefunctions.extensions.bindings.blob.BlobClient` resolves to, so a 2 GB video is never read
into memory), or a `func.InputStream` when the parameter is typed that way. Locally both trigger
sources are served by polling: there is no Event Grid here.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import threading
import time
import typing
from dataclasses import dataclass
from datetime import UTC, datetime

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobProperties, BlobServiceClient

from . import log
from .catalog import Function
from .config import ConfigError, storage_connection
from .history import iso
from .invoker import Invoker
from .store import Receipt, Store

APP_SETTING = re.compile(r"%([^%]+)%")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class BlobWatch:
    """One blob-trigger function: where it looks and how it takes the blob."""

    function: Function
    container: str
    pattern: re.Pattern
    prefix: str
    service: BlobServiceClient
    wants_stream: bool

    @classmethod
    def of(cls, function: Function) -> BlobWatch:
        path = APP_SETTING.sub(lambda m: _setting(m.group(1), function.name), function.trigger["path"])
        container, _, blob_template = path.partition("/")
        if not container or not blob_template:
            raise ConfigError(f"blob trigger {function.name}: path {path!r} must be '<container>/<blob pattern>'")
        service = BlobServiceClient.from_connection_string(
            storage_connection(function.trigger.get("connection") or "AzureWebJobsStorage"))
        pieces, cursor = [], 0
        for found in PLACEHOLDER.finditer(blob_template):
            pieces += [re.escape(blob_template[cursor:found.start()]), f"(?P<{found.group(1)}>.+?)"]
            cursor = found.end()
        pattern = re.compile("".join(pieces) + re.escape(blob_template[cursor:]))
        prefix = blob_template.split("{", 1)[0]
        return cls(function, container, pattern, prefix, service, _wants_stream(function))

    def argument(self, blob: BlobClient, properties: BlobProperties) -> object:
        if not self.wants_stream:
            return blob
        return func.InputStream(data=blob.download_blob().readall(), name=f"{self.container}/{properties.name}",
                                uri=blob.url, length=properties.size, metadata=dict(properties.metadata or {}),
                                blob_properties={"ETag": properties.etag, "Length": properties.size})


class BlobTrigger:
    def __init__(self, functions: list[Function], store: Store, invoker: Invoker, client_json: str,
                 interval: float, max_attempts: int) -> None:
        self.watches = {function.name: BlobWatch.of(function) for function in functions}
        self.store, self.invoker, self.client_json = store, invoker, client_json
        self.interval, self.max_attempts = interval, max_attempts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="devhost-blob-trigger", daemon=True)

    def start(self) -> None:
        if self.watches:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as error:  # noqa: BLE001 - storage hiccups must not end polling
                log.event("blob.scan_failed", logging.WARNING, error=f"{type(error).__name__}: {error}")
            self._stop.wait(self.interval)

    def poll_once(self) -> int:
        """Scan every watched container once; returns how many invocations it made."""
        fired = 0
        for name, watch in self.watches.items():
            container = watch.service.get_container_client(watch.container)
            try:
                blobs = list(container.list_blobs(name_starts_with=watch.prefix or None, include=["metadata"]))
            except ResourceNotFoundError:
                continue  # no container yet: nothing uploaded
            for properties in blobs:
                if self._stop.is_set():
                    return fired
                if not watch.pattern.fullmatch(properties.name):
                    continue
                receipt = self.store.receipt(name, properties.name, etag_of(properties))
                if receipt and receipt.status in ("done", "poison"):
                    continue
                fired += 1
                self._invoke(watch, properties, receipt.attempts if receipt else 0)
        return fired

    def fire(self, function_name: str, blob_path: str) -> None:
        """Invoke a blob function for one blob now, receipts aside (the admin API's manual run)."""
        watch = self.watches.get(function_name)
        if watch is None:
            raise LookupError(f"no blob-trigger function named {function_name!r}")
        container, _, blob_name = blob_path.partition("/")
        if container != watch.container or not watch.pattern.fullmatch(blob_name):
            raise LookupError(f"{blob_path!r} does not match {function_name}'s path "
                             f"{watch.container}/{watch.pattern.pattern}")
        try:
            properties = watch.service.get_blob_client(container, blob_name).get_blob_properties()
        except ResourceNotFoundError:
            raise LookupError(f"no blob {blob_path!r}") from None
        self._call(watch, properties)

    def _invoke(self, watch: BlobWatch, properties: BlobProperties, attempts: int) -> None:
        name = watch.function.name
        try:
            self._call(watch, properties)
        except Exception as error:  # noqa: BLE001 - recorded in the receipt; retried, then given up as poison
            attempts += 1
            status = "poison" if attempts >= self.max_attempts else "failed"
            message = f"{type(error).__name__}: {error}"
            self.store.record_receipt(name, properties.name, etag_of(properties), Receipt(status, attempts, message),
                                      iso(datetime.now(UTC)))
            log.event(f"blob.{status}", logging.ERROR if status == "poison" else logging.WARNING, function=name,
                      blob=f"{watch.container}/{properties.name}", attempts=attempts, error=message)
            return
        self.store.record_receipt(name, properties.name, etag_of(properties), Receipt("done", attempts + 1, None),
                                  iso(datetime.now(UTC)))

    def _call(self, watch: BlobWatch, properties: BlobProperties) -> None:
        blob = watch.service.get_blob_client(watch.container, properties.name)
        started = time.monotonic()
        log.event("function.begin", function=watch.function.name, blob=f"{watch.container}/{properties.name}",
                  etag=etag_of(properties))
        self.invoker.call(watch.function.fn, watch.function.arguments(watch.argument(blob, properties),
                                                                      self.client_json))
        log.event("function.end", function=watch.function.name, blob=f"{watch.container}/{properties.name}",
                  seconds=round(time.monotonic() - started, 3))


def etag_of(properties: BlobProperties) -> str:
    """The ETag without quotes: listings give it bare, property reads quoted."""
    return properties.etag.strip('"')


def _setting(name: str, function: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"blob trigger {function}: app setting %{name}% in its path is not set")
    return value


def _wants_stream(function: Function) -> bool:
    """True for a `func.InputStream` parameter; a BlobClient (SDK type) or no annotation gets a BlobClient."""
    original = inspect.unwrap(function.fn)
    try:
        annotation = typing.get_type_hints(original).get(function.trigger_param)
    except Exception:  # noqa: BLE001 - unresolvable string annotations: read the text instead
        annotation = inspect.signature(original).parameters[function.trigger_param].annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__qualname__", str(annotation))
    if "InputStream" in text:
        return True
    if annotation in (None, inspect.Parameter.empty) or text.endswith("BlobClient"):
        return False
    raise ConfigError(f"blob trigger {function.name}: devhost passes a BlobClient or a func.InputStream; "
                      f"parameter {function.trigger_param!r} is typed {text}")
