"""Blob storage from settings: managed identity in Azure, a connection string only for Azurite.

Files move in chunks (4 MiB blocks, two at a time), so a 2 GB video never needs 2 GB of memory.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobServiceClient, ContentSettings

from .settings import Settings, get_settings
from .telemetry import record_bytes

BLOCK_SIZE = 4 * 1024 * 1024
DELETE_BATCH = 256  # sub-requests in one Blob Batch request: the service's limit
TRANSFER_CONCURRENCY = 2
FOLDER_WORKERS = 8  # small blobs at once in upload_folder/download_folder: latency-bound, not bandwidth-bound
_CLIENT_OPTIONS = {
    "max_block_size": BLOCK_SIZE,
    "max_single_put_size": BLOCK_SIZE,
    "max_single_get_size": BLOCK_SIZE,
    "max_chunk_get_size": BLOCK_SIZE,
}


class BlobNotFound(LookupError):
    """The named blob does not exist (a missing upload, or one already handled)."""


class SourceChanged(RuntimeError):
    """A blob read pinned to an ETag found another version: it was replaced or deleted mid-job."""


@dataclass
class Traffic:
    """Bytes moved through this store, counted where they cross the wire (benchmarks read it)."""

    bytes_down: int = 0
    bytes_up: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, down: int = 0, up: int = 0) -> None:
        with self._lock:
            self.bytes_down += down
            self.bytes_up += up
        record_bytes(down, up)

    def reset(self) -> None:
        with self._lock:
            self.bytes_down = self.bytes_up = 0


@dataclass(frozen=True)
class BlobInfo:
    container: str
    name: str
    size: int
    etag: str
    metadata: dict[str, str]


def service_client(settings: Settings) -> BlobServiceClient:
    if settings.uses_connection_string:
        return BlobServiceClient.from_connection_string(settings.connection_string, **_CLIENT_OPTIONS)
    from azure.identity import DefaultAzureCredential

    return BlobServiceClient(settings.storage_account_url, credential=DefaultAzureCredential(), **_CLIENT_OPTIONS)


class BlobStore:
    """The few blob operations the app needs, each streaming."""

    def __init__(self, service: BlobServiceClient, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.traffic = Traffic()

    @classmethod
    def from_settings(cls, settings: Settings) -> BlobStore:
        return cls(service_client(settings), settings)

    def ensure_containers(self) -> None:
        """Create the app's containers if missing (locally; in Azure the infrastructure makes them)."""
        s = self.settings
        for name in (s.input_container, s.styles_container, s.work_container, s.output_container,
                     s.rejected_container, s.tables_container):
            with contextlib.suppress(ResourceExistsError):
                self.service.create_container(name)

    def _blob(self, container: str, name: str):
        return self.service.get_blob_client(container, name)

    def info(self, container: str, name: str) -> BlobInfo:
        try:
            props = self._blob(container, name).get_blob_properties()
        except ResourceNotFoundError:
            raise BlobNotFound(f"{container}/{name} does not exist") from None
        return BlobInfo(container, name, props.size, props.etag.strip('"'), dict(props.metadata or {}))

    def exists(self, container: str, name: str) -> bool:
        return self._blob(container, name).exists()

    def upload_file(self, container: str, name: str, path: Path, metadata: dict[str, str] | None = None,
                    content_type: str | None = None) -> None:
        settings = ContentSettings(content_type=content_type) if content_type else None
        size = path.stat().st_size
        with path.open("rb") as data:
            self._blob(container, name).upload_blob(data, overwrite=True, metadata=metadata, length=size,
                                                    max_concurrency=TRANSFER_CONCURRENCY, content_settings=settings)
        self.traffic.add(up=size)

    def download_file(self, container: str, name: str, path: Path, etag: str | None = None) -> Path:
        """The blob to `path`, streamed; with `etag`, only that version (else SourceChanged)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        pin = {"etag": _quoted(etag), "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            stream = self._blob(container, name).download_blob(max_concurrency=TRANSFER_CONCURRENCY, **pin)
        except ResourceModifiedError:
            raise SourceChanged(f"{container}/{name} was replaced after the job started (ETag {etag} is gone); "
                                "the new upload gets its own job") from None
        except ResourceNotFoundError:
            raise BlobNotFound(f"{container}/{name} does not exist") from None
        with path.open("wb") as target:
            self.traffic.add(down=stream.readinto(target))
        return path

    def read_range(self, container: str, name: str, offset: int, length: int, etag: str | None = None) -> bytes:
        """Bytes [offset, offset+length) of a blob; with `etag`, only of that version (else SourceChanged)."""
        pin = {"etag": _quoted(etag), "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            data = self._blob(container, name).download_blob(offset, length, max_concurrency=1, **pin).readall()
        except ResourceModifiedError:
            raise SourceChanged(f"{container}/{name} was replaced after the job started (ETag {etag} is gone); "
                                "the new upload gets its own job") from None
        except ResourceNotFoundError:
            if etag:
                raise SourceChanged(f"{container}/{name} was deleted while the job was reading it") from None
            raise BlobNotFound(f"{container}/{name} does not exist") from None
        self.traffic.add(down=len(data))
        return data

    def pinned_info(self, container: str, name: str, etag: str) -> BlobInfo:
        """The blob's properties, refusing any version but `etag`."""
        try:
            props = self._blob(container, name).get_blob_properties(etag=_quoted(etag),
                                                                    match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            raise SourceChanged(f"{container}/{name} was replaced after the job started (ETag {etag} is gone); "
                                "the new upload gets its own job") from None
        except ResourceNotFoundError:
            raise SourceChanged(f"{container}/{name} was deleted while the job was reading it") from None
        return BlobInfo(container, name, props.size, props.etag.strip('"'), dict(props.metadata or {}))

    def stage_block(self, container: str, name: str, block_id: str, data: bytes) -> None:
        """One uncommitted block of a block blob: invisible until commit_blocks names it."""
        self._blob(container, name).stage_block(block_id, data, length=len(data))
        self.traffic.add(up=len(data))

    def commit_blocks(self, container: str, name: str, block_ids: list[str], metadata: dict[str, str] | None = None,
                      content_type: str | None = None) -> None:
        """Publish the staged blocks, in this order, as the blob's whole content (atomic for readers)."""
        settings = ContentSettings(content_type=content_type) if content_type else None
        self._blob(container, name).commit_block_list([BlobBlock(block_id) for block_id in block_ids],
                                                      content_settings=settings, metadata=metadata)

    def copy(self, source_container: str, source_name: str, target_container: str, target_name: str) -> None:
        """Copy through this process in chunks (works with identity auth, where a server-side copy
        of a private blob would need a SAS we do not want to mint)."""
        try:
            stream = self._blob(source_container, source_name).download_blob(max_concurrency=TRANSFER_CONCURRENCY)
        except ResourceNotFoundError:
            raise BlobNotFound(f"{source_container}/{source_name} does not exist") from None
        metadata = dict(stream.properties.metadata or {})
        self._blob(target_container, target_name).upload_blob(
            stream.chunks(), length=stream.size, overwrite=True, metadata=metadata, max_concurrency=1
        )
        self.traffic.add(down=stream.size, up=stream.size)

    def upload_folder(self, container: str, prefix: str, folder: Path, files: list[Path] | None = None) -> int:
        """Every file under `folder` (or just `files`, paths under it) to `prefix` + its relative path,
        FOLDER_WORKERS at a time (a many-models run has thousands of small files); returns the count."""
        paths = files if files is not None else sorted(path for path in folder.rglob("*") if path.is_file())

        def one(path: Path) -> None:
            self.upload_file(container, prefix + path.relative_to(folder).as_posix(), path)

        with ThreadPoolExecutor(FOLDER_WORKERS) as pool:
            list(pool.map(one, paths))
        return len(paths)

    def download_folder(self, container: str, prefix: str, folder: Path) -> int:
        """Every blob under `prefix` into `folder`, by its name after the prefix; returns the count."""
        names = list(self.list_names(container, prefix))
        with ThreadPoolExecutor(FOLDER_WORKERS) as pool:
            list(pool.map(lambda name: self.download_file(container, name, folder / name[len(prefix):]), names))
        return len(names)

    def delete(self, container: str, name: str) -> bool:
        try:
            self._blob(container, name).delete_blob()
            return True
        except ResourceNotFoundError:
            return False

    def list_names(self, container: str, prefix: str = "") -> Iterator[str]:
        yield from self.service.get_container_client(container).list_blob_names(name_starts_with=prefix or None)

    def delete_prefix(self, container: str, prefix: str) -> int:
        """Every blob under `prefix`, DELETE_BATCH to a request (the Blob Batch API's limit), listed
        and deleted page by page; blobs already gone count as deleted. Returns how many were listed."""
        client = self.service.get_container_client(container)
        count, page = 0, []
        for name in client.list_blob_names(name_starts_with=prefix or None):
            page.append(name)
            if len(page) == DELETE_BATCH:
                count += self._delete_batch(client, page)
                page = []
        return count + (self._delete_batch(client, page) if page else 0)

    @staticmethod
    def _delete_batch(client, names: list[str]) -> int:
        failed = [response for response in client.delete_blobs(*names, raise_on_any_failure=False)
                  if response.status_code not in (202, 404)]
        if failed:
            raise HttpResponseError(f"{len(failed)} of {len(names)} deletes failed, first with status "
                                    f"{failed[0].status_code}")
        return len(names)

    def write_bytes(self, container: str, name: str, data: bytes, content_type: str) -> None:
        """A small blob from memory (JSON, a preview, a segment's packet spool)."""
        self._blob(container, name).upload_blob(data, overwrite=True,
                                                content_settings=ContentSettings(content_type=content_type))
        self.traffic.add(up=len(data))

    def create_json(self, container: str, name: str, payload: dict) -> bool:
        """Write a small JSON blob only if none exists (If-None-Match: *): True for the one writer that
        created it, so work done on at-least-once delivery can happen exactly once."""
        data = json.dumps(payload).encode()
        try:
            self._blob(container, name).upload_blob(
                data, overwrite=False, content_settings=ContentSettings(content_type="application/json"))
        except ResourceExistsError:
            return False
        self.traffic.add(up=len(data))
        return True

    def replace_json(self, container: str, name: str, payload: dict, etag: str) -> bool:
        """Overwrite a small JSON blob only while it is still the version `etag` names (If-Match):
        False when another writer changed or removed it first."""
        data = json.dumps(payload).encode()
        try:
            self._blob(container, name).upload_blob(
                data, overwrite=True, etag=_quoted(etag), match_condition=MatchConditions.IfNotModified,
                content_settings=ContentSettings(content_type="application/json"))
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        self.traffic.add(up=len(data))
        return True

    def read_json_version(self, container: str, name: str) -> tuple[dict, str]:
        """A small JSON blob and the ETag of the version read (for replace_json)."""
        try:
            download = self._blob(container, name).download_blob()
            data = download.readall()
        except ResourceNotFoundError:
            raise BlobNotFound(f"{container}/{name} does not exist") from None
        self.traffic.add(down=len(data))
        return json.loads(data), download.properties.etag.strip('"')

    def read_bytes(self, container: str, name: str) -> bytes:
        try:
            data = self._blob(container, name).download_blob().readall()
        except ResourceNotFoundError:
            raise BlobNotFound(f"{container}/{name} does not exist") from None
        self.traffic.add(down=len(data))
        return data

    def write_json(self, container: str, name: str, payload: dict, indent: int | None = 2) -> None:
        self.write_bytes(container, name, json.dumps(payload, indent=indent).encode(), "application/json")

    def read_json(self, container: str, name: str) -> dict:
        return json.loads(self.read_bytes(container, name))


def _quoted(etag: str) -> str:
    """ETags are kept unquoted (as BlobInfo has them); the service compares the quoted form."""
    return etag if etag.startswith('"') else f'"{etag}"'


@cache
def app_store() -> BlobStore:
    """The Function App's one store, from its settings; locally (Azurite) nothing provisions the
    containers, so they are created on first use."""
    store = BlobStore.from_settings(get_settings())
    if store.settings.uses_connection_string:
        store.ensure_containers()
    return store
