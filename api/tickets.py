"""What the jobs page asks for before it moves bytes: an upload ticket (one write-only SAS URL for one
new blob in input/, plus the headers that carry the job's style and options as blob metadata) and
download links (read-only SAS URLs for a finished job's output and preview).

The upload itself then starts the job through the blob trigger, exactly as any other upload does;
style and options are checked here first, with the same words as `POST /api/jobs`, so the page can
say what is wrong before a byte is sent.
"""

from __future__ import annotations

from activities.media.job_inputs import JobInputProblem, check_options, check_style
from restyle.blob_names import UnsafeBlobName, safe_blob_name
from restyle.storage import BlobStore

from .errors import ApiError, request_fields
from .valet import read_permission, valet_key, write_once_permission

# Request headers the page's PUT sends cross-origin: the data account's CORS rule allows exactly these
# (infra/app/storage.bicep, checked by tests/test_infra.py; Azurite gets the same rule under `restyle up`).
CORS_ALLOWED_HEADERS = ("content-type", "if-none-match", "x-ms-blob-type", "x-ms-meta-*")
CORS_METHODS = ("GET", "HEAD", "PUT", "OPTIONS")


def upload_ticket(store: BlobStore, body: object) -> dict:
    """POST /api/uploads body `{"name", "style"?, "options"?}` -> the PUT to make (blocking)."""
    body = request_fields(body, ("name", "style", "options"), '{"name": "clip.mp4", "style": "19"}')
    name, style, options = body.get("name"), body.get("style", store.settings.default_style), body.get("options", {})
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
    if store.exists(container, name):
        raise ApiError(409, "name_taken", f"{container}/{name} exists already; rename the file or pick another name")
    key = valet_key(store, container, name, write_once_permission(), store.settings.valet_key_minutes)
    metadata = {"style": style} | {str(field): _text(value) for field, value in options.items()}
    headers = {"x-ms-blob-type": "BlockBlob", "If-None-Match": "*"}  # create only: never replace another upload
    headers |= {f"x-ms-meta-{field}": value for field, value in metadata.items()}
    return {"blob": name, "url": key.url, "method": "PUT", "headers": headers, "expires": key.expires.isoformat()}


def download_links(store: BlobStore, job: dict) -> dict:
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
    return links


def _text(value: str | int | float | bool) -> str:
    """Metadata values are text; booleans as the lower-case words the options parser reads."""
    return str(value).lower() if isinstance(value, bool) else str(value)
