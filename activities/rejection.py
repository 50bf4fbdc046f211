"""Rejecting an upload: copy it to rejected/ with a reason record, then remove it from input/.

In that order, so that a crash at any point leaves the file in input/, in rejected/, or both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from restyle.storage import BlobStore

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def rejected_name(name: str) -> str:
    """A safe name for the rejected copy, even when the upload's own name was the problem:
    control characters become `_`, `.`/`..` segments become `_`, empty segments are dropped."""
    parts = [part.strip() for part in _CONTROL.sub("_", name).replace("\\", "/").split("/")]
    cleaned = ["_" if part in (".", "..") else part for part in parts if part]
    return "/".join(cleaned) or "unnamed"


def reject_upload(store: BlobStore, name: str, reason: str, facts: dict | None = None,
                  container: str | None = None) -> dict:
    """`container`: where the upload is (input/ for videos, tables/ for many-models tables)."""
    settings = store.settings
    source = container or settings.input_container
    target = rejected_name(name)
    store.copy(source, name, settings.rejected_container, target)
    record = {
        "blob": name,
        "reason": reason,
        "facts": facts or {},
        "rejected_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    store.write_json(settings.rejected_container, f"{target}.reason.json", record)
    store.delete(source, name)
    return {"accepted": False, "reason": reason, "rejected_blob": f"{settings.rejected_container}/{target}"}
