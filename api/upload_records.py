"""Who uploads through an upload ticket, and how large the ticket lets the upload be.

A ticket's SAS can only create its one blob, so only its holder can make that blob; storage cannot bind
an uploader or a size to a SAS, so the app keeps both, in the work container (no person has access):
- `uploads/<name>.json`: the name's owner and byte limit, read by the blob trigger (the job's owner,
  probe's size check) and by POST /api/jobs (only the owner, or an operator, starts jobs on it). Written
  with If-None-Match / If-Match, so two tickets racing for one name cannot both be recorded.
- `tickets/<owner digest>/<expiry>/<name>`: a ticket not used yet; it counts against its owner's
  jobs-at-once quota until its upload starts a job or it expires.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from restyle.storage import BlobNotFound, BlobStore


@dataclass(frozen=True)
class UploadRecord:
    owner: dict[str, str]  # {"id", "name"}
    max_bytes: int
    expires: datetime  # the ticket's: after this nobody can create the blob with it

    def as_dict(self) -> dict:
        return {"owner": self.owner, "max_bytes": self.max_bytes, "expires": self.expires.isoformat()}

    @classmethod
    def from_dict(cls, data: dict) -> UploadRecord:
        return cls(data["owner"], int(data["max_bytes"]), datetime.fromisoformat(data["expires"]))


def record_name(name: str) -> str:
    return f"uploads/{name}.json"


def _tickets_prefix(owner_id: str) -> str:
    return f"tickets/{hashlib.sha256(owner_id.encode()).hexdigest()[:32]}/"


def _ticket_marker(owner_id: str, expires: datetime, name: str) -> str:
    return f"{_tickets_prefix(owner_id)}{int(expires.timestamp())}/{name}"


def upload_record(store: BlobStore, name: str) -> UploadRecord | None:
    try:
        return UploadRecord.from_dict(store.read_json(store.settings.work_container, record_name(name)))
    except BlobNotFound:
        return None


def claim_name(store: BlobStore, name: str, record: UploadRecord, now: datetime) -> bool:
    """Record `record` for `name` unless another owner holds a ticket for it that has not expired;
    False when one does (or won a race for it). The caller has checked that no blob has the name."""
    container, path = store.settings.work_container, record_name(name)
    try:
        current, etag = store.read_json_version(container, path)
    except BlobNotFound:
        claimed = store.create_json(container, path, record.as_dict())
    else:
        held = UploadRecord.from_dict(current)
        if held.owner["id"] != record.owner["id"] and held.expires > now:
            return False
        claimed = store.replace_json(container, path, record.as_dict(), etag)
    if claimed:
        store.write_json(container, _ticket_marker(record.owner["id"], record.expires, name), {})
    return claimed


def ticket_used(store: BlobStore, name: str, record: UploadRecord) -> None:
    """The upload started its job: its ticket no longer counts as running."""
    store.delete(store.settings.work_container, _ticket_marker(record.owner["id"], record.expires, name))


def pending_tickets(store: BlobStore, owner_id: str, now: datetime) -> int:
    """Tickets of `owner_id` not used yet and not expired (expired markers are removed on the way)."""
    container, prefix, pending = store.settings.work_container, _tickets_prefix(owner_id), 0
    for marker in list(store.list_names(container, prefix)):
        expiry = marker[len(prefix):].split("/", 1)[0]
        if expiry.isdigit() and datetime.fromtimestamp(int(expiry), UTC) > now:
            pending += 1
        else:
            store.delete(container, marker)
    return pending
