"""A stand-in for `azure.ai.ml.MLClient` that is no kinder than the Azure ML service.

What the backend relies on, and what the real service does (azure-ai-ml 1.35,
azure/ai/ml/operations/_job_operations.py):
- job names are unique in a workspace: `jobs.create_or_update` is a PUT of a new job, and a second
  create of a name that exists fails (here `ResourceExistsError`; the service answers a 4xx that
  azure-core raises as an `HttpResponseError`);
- `jobs.get(name)` raises `ResourceNotFoundError` for a name that does not exist;
- states advance on their own: each `get` moves a job one step along `path` (queued states first);
- `jobs.begin_cancel(name)` is asynchronous: it returns a poller at once, the job reads
  `CancelRequested` for one more `get`, then `Canceled`; canceling an unknown name raises
  `ResourceNotFoundError`.
Faults can be injected: `fail_after_create` makes the next create raise *after* the job exists
(a timeout on the PUT's response), as an at-least-once retry of `submit` would see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

QUEUED_THEN_RUNNING = ("NotStarted", "Queued", "Preparing", "Running")
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}


@dataclass
class AmlJob:
    name: str
    spec: object
    path: tuple[str, ...] = QUEUED_THEN_RUNNING
    step: int = 0
    status: str = "NotStarted"
    error: object = None
    properties: dict = field(default_factory=dict)
    cancel_requested: bool = False

    def advance(self) -> None:
        if self.status in TERMINAL:
            return
        if self.cancel_requested:
            self.status = "Canceled" if self.status == "CancelRequested" else "CancelRequested"
            return
        self.step = min(self.step + 1, len(self.path) - 1)
        self.status = self.path[self.step]


class CancelPoller:
    """What `begin_cancel` returns: the cancel is accepted, not done."""

    def __init__(self, job: AmlJob) -> None:
        self.job = job

    def done(self) -> bool:
        return self.job.status == "Canceled"

    def result(self, timeout: float | None = None) -> None:
        return None


class AmlJobs:
    def __init__(self) -> None:
        self.jobs: dict[str, AmlJob] = {}
        self.creates: list[str] = []  # every create call, including the failed ones
        self.cancels: list[str] = []
        self.fail_after_create = 0
        self.fail_get: Exception | None = None

    def create_or_update(self, job, **_kwargs) -> AmlJob:
        self.creates.append(job.name)
        if job.name in self.jobs:
            raise ResourceExistsError(f"A job with name {job.name} already exists")
        self.jobs[job.name] = AmlJob(job.name, job)
        if self.fail_after_create:
            self.fail_after_create -= 1
            raise HttpResponseError("the request timed out after the job was created")
        return self.jobs[job.name]

    def get(self, name: str) -> AmlJob:
        if self.fail_get is not None:
            raise self.fail_get
        if name not in self.jobs:
            raise ResourceNotFoundError(f"job {name} not found")
        job = self.jobs[name]
        job.advance()
        return job

    def begin_cancel(self, name: str, **_kwargs) -> CancelPoller:
        if name not in self.jobs:
            raise ResourceNotFoundError(f"job {name} not found")
        self.cancels.append(name)
        job = self.jobs[name]
        if job.status not in TERMINAL:
            job.cancel_requested = True
        return CancelPoller(job)


class FakeMLClient:
    """MLClient as far as the backend uses it: `.jobs`."""

    def __init__(self) -> None:
        self.jobs = AmlJobs()
