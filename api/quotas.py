"""Per-person quotas: jobs running at once, and GPU minutes of scoring per UTC day. A request past
either is answered 429 with `Retry-After` and a sentence saying when to try again.

Running jobs are the owner's jobs not ended yet plus upload tickets not used yet (a ticket is a job
on its way). GPU minutes are the rank seconds the owner's jobs recorded today (activities/compute/
usage.py: written when a scoring attempt ends or the job is canceled), so a job still scoring counts
once its attempt ends: a person can go past the day's minutes by at most what their running jobs use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from activities.compute.usage import job_usage
from restyle.settings import Settings
from restyle.storage import BlobStore

from .callers import Caller
from .errors import ApiError
from .jobs import TERMINAL
from .upload_records import pending_tickets

RETRY_RUNNING_SECONDS = 30  # when no running job has an estimate of its end


@dataclass(frozen=True)
class Usage:
    running: int
    gpu_minutes: float
    day_ends: datetime  # when today's GPU minutes start again from zero (UTC midnight)
    soonest_end: float | None  # seconds until the first running job is expected to end, if known

    def as_dict(self, settings: Settings, caller: Caller) -> dict:
        limited = caller.limited
        return {"running": self.running, "running_limit": settings.max_running_jobs_per_user if limited else None,
                "gpu_minutes_today": round(self.gpu_minutes, 4),  # a short clip scores in seconds
                "gpu_minutes_limit": settings.gpu_minutes_per_user_per_day if limited else None,
                "day_ends": self.day_ends.isoformat()}


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def usage_of(store: BlobStore, caller: Caller, jobs: list[dict], now: datetime) -> Usage:
    """`jobs`: the caller's own jobs (job views). Blocking: storage reads, one per job updated today."""
    today = day_start(now)
    running = [job for job in jobs if job["status"] not in TERMINAL]
    seconds = 0.0
    for job in jobs:
        if job["pipeline"] == "video" and job["updated"] and _utc(job["updated"]) >= today:
            used = job_usage(store, job["id"])
            seconds += used.gpu_seconds if used and used.recorded_at >= today else 0.0
    ends = [job["progress"]["eta_seconds"] for job in running if job["progress"].get("eta_seconds") is not None]
    return Usage(len(running) + pending_tickets(store, caller.id, now), seconds / 60, today + timedelta(days=1),
                 min(ends) if ends else None)


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_quota(usage: Usage, settings: Settings, now: datetime) -> None:
    """ApiError 429 when one more job would go past a quota."""
    if usage.running >= settings.max_running_jobs_per_user:
        wait = max(1, round(usage.soonest_end)) if usage.soonest_end is not None else RETRY_RUNNING_SECONDS
        raise ApiError(429, "too_many_running",
                       f"you have {usage.running} jobs running or about to start (upload tickets not used yet count); "
                       f"the limit is {settings.max_running_jobs_per_user} at once: try again when one has ended "
                       f"(in about {wait} s)", {"Retry-After": str(wait)})
    if usage.gpu_minutes >= settings.gpu_minutes_per_user_per_day:
        wait = max(1, int((usage.day_ends - now).total_seconds()))
        raise ApiError(429, "gpu_minutes_used",
                       f"you have used {usage.gpu_minutes:.1f} of your {settings.gpu_minutes_per_user_per_day:g} GPU "
                       f"minutes for today (UTC); they renew at {usage.day_ends:%Y-%m-%d %H:%M} UTC, in {wait} s",
                       {"Retry-After": str(wait)})
