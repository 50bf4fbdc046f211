"""Blob names of one job's intermediates under the work container: `<job_id>/...`.

The one place that knows the layout; the scoring job sees the same tree (minus `<job_id>/`) as its
input folder, with its results under `styled/`.
"""

from __future__ import annotations

from dataclasses import dataclass

from forecast_job.azureml import PREPARED_FOLDER, RESULTS_FOLDER, TRAINED_FOLDER
from forecast_job.manifest import PREPARED
from scoring_job.manifest import MANIFEST_NAME

STYLED_FOLDER = "styled"


def segment_name(index: int) -> str:
    """Same stem as scoring_job.manifest.Segment.name, so inputs and outputs pair up."""
    return f"segment_{index:05d}"


def segment_path(index: int) -> str:
    """A source segment's path relative to the job folder (as the manifest lists it). Matroska, because
    it holds any video codec a source may bring (MPEG-2 from .mpg, WMV, FLV1, ...) by stream copy."""
    return f"segments/{segment_name(index)}.mkv"


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
    def manifest(self) -> str:
        return f"{self.job_id}/{MANIFEST_NAME}"

    @property
    def frame_times(self) -> str:
        """Every source frame's presentation timestamp: stitch gives them back to the styled frames."""
        return f"{self.job_id}/frame_times.json"

    def extras(self, index: int) -> str:
        """The segment's packets of the source's other streams (activities.media.packet_spool)."""
        return f"{self.job_id}/extras/{segment_name(index)}.pkts"

    @property
    def canceled_marker(self) -> str:
        """Outside `prefix` on purpose: removing a canceled job's intermediates keeps the marker, so a
        submit_compute still running (or redelivered) after the DELETE sees it."""
        return f"{self.job_id}.canceled"

    @property
    def usage(self) -> str:
        """The job's scoring seconds so far (activities.compute.usage); outside `prefix`, like the
        canceled marker, so it outlives the intermediates and the day's quota still counts it."""
        return f"{self.job_id}.usage.json"

    def attempt_closed(self, attempt: int) -> str:
        """Created once, by the first poll that sees the attempt end: its span and totals are emitted once."""
        return f"{self.job_id}/attempts/{attempt}.closed.json"

    @property
    def table(self) -> str:
        """Many models: the upload (pinned to its ETag), format, dataset and options the compute job prepares."""
        return f"{self.job_id}/table.json"

    @property
    def prepared_prefix(self) -> str:
        """Many models: the prepare step's work folder (Azure ML writes it all; a local run, its summary)."""
        return f"{self.job_id}/{PREPARED_FOLDER}/"

    @property
    def prepared(self) -> str:
        """Many models: the prepare step's summary (partitions, buckets, ...) or its rejection of the table."""
        return f"{self.prepared_prefix}{PREPARED}"

    @property
    def trained_prefix(self) -> str:
        """Many models: forecast_job's output, one folder per trained bucket (as in Azure ML's mount)."""
        return f"{self.job_id}/{TRAINED_FOLDER}/"

    @property
    def results_prefix(self) -> str:
        """Many models: forecast_job.publish's forecasts/, metrics/ and gate/ folders."""
        return f"{self.job_id}/{RESULTS_FOLDER}/"

    @property
    def styled_prefix(self) -> str:
        return f"{self.job_id}/{STYLED_FOLDER}/"

    def inside(self, relative: str) -> str:
        """A path relative to the job folder (as in the manifest) as a blob name."""
        return f"{self.job_id}/{relative}"

    def segment(self, index: int) -> str:
        return self.inside(segment_path(index))

    def styled(self, index: int) -> str:
        return f"{self.styled_prefix}{segment_name(index)}.mp4"

    def styled_result(self, index: int) -> str:
        """The scoring job's record of a styled segment (frames, device, the encoder run it belongs to)."""
        return f"{self.styled_prefix}{segment_name(index)}.json"
