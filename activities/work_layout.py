"""Blob names of one job's intermediates under the work container: `<job_id>/...`."""

from __future__ import annotations

from dataclasses import dataclass


def segment_name(index: int) -> str:
    """Same stem as scoring_job.manifest.Segment.name, so inputs and outputs pair up."""
    return f"segment_{index:05d}"


@dataclass(frozen=True)
class WorkLayout:
    job_id: str

    @property
    def prefix(self) -> str:
        return f"{self.job_id}/"

    @property
    def plan(self) -> str:
        return f"{self.job_id}/plan.json"

    @property
    def audio(self) -> str:
        return f"{self.job_id}/audio.mka"

    def segment(self, index: int) -> str:
        return f"{self.job_id}/segments/{segment_name(index)}.mp4"

    def styled(self, index: int) -> str:
        return f"{self.job_id}/styled/{segment_name(index)}.mp4"
