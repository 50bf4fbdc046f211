"""What a job has used of the GPUs: the rank seconds its scoring job spent on finished segments,
recorded whenever an attempt ends and when the job is canceled, for the per-person quota of GPU
minutes a day (api/quotas.py).

The total is recomputed from the job's segment results each time (they stay in work/<job>/styled/
across attempts, and a resumed attempt skips finished segments), so recording it again is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from restyle.storage import BlobNotFound, BlobStore

from ..work_layout import WorkLayout


@dataclass(frozen=True)
class ComputeUsage:
    gpu_seconds: float
    recorded_at: datetime


def record_usage(store: BlobStore, job_id: str, gpu_seconds: float, at: datetime | None = None) -> None:
    """`at`: when the seconds were used (now, unless a test says otherwise); the day they count for."""
    store.write_json(store.settings.work_container, WorkLayout(job_id).usage,
                     {"gpu_seconds": round(gpu_seconds, 3), "recorded_at": (at or datetime.now(UTC)).isoformat()})


def job_usage(store: BlobStore, job_id: str) -> ComputeUsage | None:
    try:
        record = store.read_json(store.settings.work_container, WorkLayout(job_id).usage)
    except BlobNotFound:
        return None
    return ComputeUsage(float(record["gpu_seconds"]), datetime.fromisoformat(record["recorded_at"]))
