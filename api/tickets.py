"""What the jobs page asks for before it moves bytes: an upload ticket (one create-only SAS URL for one
new blob in input/, plus the headers that carry the job's style and options as blob metadata) and
download links (read-only SAS URLs for a finished job's output and preview).

The upload itself then starts the job through the blob trigger, exactly as any other upload does;
style and options are checked here first, with the same words as `POST /api/jobs`, so the page can
say what is wrong before a byte is sent. A ticket names its size: the blob trigger hands that limit
to probe, which rejects a larger upload with the reason (api/upload_records.py keeps owner and size).
"""

from __future__ import annotations

from datetime import UTC, datetime

from activities.media.job_inputs import JobInputProblem, check_options, check_style
from restyle.blob_names import UnsafeBlobName, safe_blob_name
from restyle.storage import BlobStore
from restyle.telemetry import record_audit

from .callers import Caller
from .errors import ApiError, request_fields
from .upload_records import UploadRecord, claim_name
from .valet import create_only_permission, read_permission, valet_key

# Request headers the page's PUT sends cross-origin: the data account's CORS rule allows exactly these
# (infra/app/storage.bicep, checked by tests/test_infra.py; Azurite gets the same rule under `restyle up`).
CORS_ALLOWED_HEADERS = ("content-type", "x-ms-blob-type", "x-ms-meta-*")
CORS_METHODS = ("GET", "HEAD", "PUT", "OPTIONS")
MAX_PUT_BYTES = 5000 * 1024 * 1024  # Put Blob's limit: a ticket is for one PUT


def upload_ticket(store: BlobStore, body: object, caller: Caller) -> dict:
    """POST /api/uploads body `{"name", "size", "style"?, "options"?}` -> the PUT to make (blocking)."""
    body = request_fields(body, ("name", "size", "style", "options"),
                          '{"name": "clip.mp4", "size": 1048576, "style": "19"}')
    name, style, options = body.get("name"), body.get("style", store.settings.default_style), body.get("options", {})
    size = _size(body.get("size"), min(store.settings.max_bytes, MAX_PUT_BYTES))
    if not isinstance(style, str):
        raise ApiError(400, "invalid_style", "`style` must be a string")
    plain = str | int | float | bool
    if not isinstance(options, dict) or not all(isinstance(value, plain) for value in options.values()):
        raise ApiError(400, "invalid_options", "`options` must be an object of plain values, like {\"scale\": \"0.5\"}")
    try:
        name = safe_blob_name(name)
        style = check_style(store, style)
        check_options(options)
    except UnsafeBlobName as error:
        raise ApiError(400, "invalid_name", str(error)) from None
    except JobInputProblem as error:
        raise ApiError(404 if error.missing else 400, f"invalid_{error.field}", str(error)) from None
    container = store.settings.input_container
    taken = ApiError(409, "name_taken", f"{container}/{name} exists already; rename the file or pick another name")
    if store.exists(container, name):
        raise taken
    key = valet_key(store, container, name, create_only_permission(), store.settings.valet_key_minutes)
    if not claim_name(store, name, UploadRecord(caller.as_owner(), size, key.expires), datetime.now(UTC)):
        raise taken  # another person's ticket for this name has not expired yet
    metadata = {"style": style} | {str(field): _text(value) for field, value in options.items()}
    headers = {"x-ms-blob-type": "BlockBlob"} | {f"x-ms-meta-{field}": value for field, value in metadata.items()}
    return {"blob": name, "url": key.url, "method": "PUT", "headers": headers, "max_bytes": size,
            "expires": key.expires.isoformat()}


def _size(value: object, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ApiError(400, "invalid_size", "`size` must be the file's size in bytes (a positive whole number)")
    if value > limit:
        raise ApiError(413, "upload_too_large", f"the file is {value} bytes; one upload may be at most {limit}")
    return value


def download_links(store: BlobStore, job: dict, caller: Caller) -> dict:
    """Read-only SAS URLs for a Completed job's output video and preview image (blocking)."""
    if job["status"] != "Completed" or not job.get("output"):
        raise ApiError(409, "job_not_completed", f"job {job['id']} has no output yet ({job['status']})")
    links = {}
    for kind in ("output_blob", "preview_blob"):
        container, _, name = (job["output"].get(kind) or "").partition("/")
        if name:
            key = valet_key(store, container, name, read_permission(), store.settings.valet_key_minutes)
            links[kind.removesuffix("_blob")] = key.url
            links["expires"] = key.expires.isoformat()
    record_audit("job_downloaded", caller.id, job["id"], owner=job["owner"]["id"],
                 blob=(job["output"].get("output_blob") or ""))
    return links


def _text(value: str | int | float | bool) -> str:
    """Metadata values are text; booleans as the lower-case words the options parser reads."""
    return str(value).lower() if isinstance(value, bool) else str(value)
