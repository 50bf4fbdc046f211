"""cleanup: remove a job's intermediates from the work container (kept when settings say so, unless
the job was canceled: `remove`), in batched deletes."""

from __future__ import annotations

from restyle.storage import BlobStore

from .work_layout import WorkLayout


def cleanup_work(store: BlobStore, job_id: str, succeeded: bool, remove: bool = False) -> dict:
    settings = store.settings
    keep = settings.keep_work_on_success if succeeded else settings.keep_work_on_failure
    if keep and not remove:
        return {"removed": 0, "kept": True}
    return {"removed": store.delete_prefix(settings.work_container, WorkLayout(job_id).prefix), "kept": False}
