"""The one typed settings object: app settings in Azure, environment / local.settings.json locally.

Every setting has a default that serves a local run against Azurite.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The blob trigger's connection (an app-setting prefix, as the Functions host reads it): in Azure
# DATA_CONNECTION__blobServiceUri / __queueServiceUri with the app's managed identity; locally a
# connection string under DATA_CONNECTION itself.
DATA_CONNECTION = "RestyleData"

# Azurite's published development account (not a secret: it is the same on every machine).
AZURITE_CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RESTYLE_", extra="ignore", frozen=True, populate_by_name=True)

    # Storage: an account URL (Azure, managed identity) or, for Azurite only, a connection string.
    storage_account_url: str | None = None
    storage_connection_string: str | None = None
    input_container: str = "input"
    styles_container: str = "styles"
    work_container: str = "work"
    output_container: str = "output"
    rejected_container: str = "rejected"
    tables_container: str = "tables"  # many models: sales tables dropped here start a training run

    # Triggers and API. The blob trigger's source is read when function_app is imported: Flex
    # Consumption supports only "EventGrid"; the polling source serves Azurite locally.
    blob_trigger_source: Literal["EventGrid", "LogsAndContainerScan"] = "LogsAndContainerScan"
    default_style: str = "19"  # used when an upload has no `style` metadata and POST /api/jobs names none
    max_request_bytes: int = Field(default=64 * 1024, gt=0)  # HTTP API request bodies beyond this get 413
    # Lifetime of the SAS URLs the jobs page gets for one upload or one download (api/valet.py).
    valet_key_minutes: float = Field(default=15, gt=0, le=60)

    # Who may call the HTTP API (api/callers.py). "open": as under `func start`, which checks no keys,
    # a caller that is not signed in is the key caller. "required" (Azure: infra/app/appsettings.bicep):
    # a caller is signed in (App Service Authentication) or sends a key whose SHA-256 is listed in
    # `api_key_sha256`; anyone else gets 401.
    auth: Literal["open", "required"] = "open"
    api_key_sha256: str = ""  # hex digests, comma-separated (two while a key is rotated)
    # Quotas of each signed-in person (operators and the key are not limited): jobs running at once
    # (upload tickets not used yet count as running), and GPU minutes of scoring per UTC day.
    max_running_jobs_per_user: int = Field(default=2, gt=0)
    gpu_minutes_per_user_per_day: float = Field(default=120, gt=0)

    # Input limits: anything beyond is rejected with the reason, never processed.
    max_duration_seconds: float = Field(default=2 * 3600, gt=0)
    max_pixels: int = Field(default=3840 * 2160, gt=0)
    max_bytes: int = Field(default=8 * 1024**3, gt=0)

    # Splitting: target segment length, and at least this many segments per scoring worker.
    segment_seconds: float = Field(default=10.0, gt=0)
    scoring_workers: int = Field(default=2, gt=0)
    segments_per_worker: int = Field(default=3, gt=0)
    split_parallelism: int = Field(default=4, gt=0)  # split activities of one video running at once (a wave)

    # Where compute jobs (both pipelines') run: "local" (processes on this machine) or "azureml" (an
    # MPI command job on a GPU cluster for videos, a parallel job for tables). RESTYLE_SCORING_BACKEND,
    # its name before it served both pipelines, is still read.
    compute_backend: Literal["local", "azureml"] = Field(
        default="local", validation_alias=AliasChoices("RESTYLE_COMPUTE_BACKEND", "RESTYLE_SCORING_BACKEND"))
    aml_subscription_id: str | None = None
    aml_resource_group: str | None = None
    aml_workspace: str | None = None
    aml_compute: str = "gpu-cluster"
    aml_environment: str = "restyle-scoring@latest"
    aml_datastore: str = "work"  # datastore over the data account's work container
    aml_instance_count: int = Field(default=1, gt=0)
    aml_processes_per_instance: int = Field(default=1, gt=0)  # = GPUs per node
    aml_experiment: str = "restyle"

    # Failed/pre-empted compute jobs are resubmitted (and resume); the RESTYLE_SCORING_* names are still read.
    compute_max_attempts: int = Field(default=3, gt=0, validation_alias=AliasChoices(
        "RESTYLE_COMPUTE_MAX_ATTEMPTS", "RESTYLE_SCORING_MAX_ATTEMPTS"))
    compute_deadline_seconds: float = Field(default=6 * 3600, gt=0, validation_alias=AliasChoices(
        "RESTYLE_COMPUTE_DEADLINE_SECONDS", "RESTYLE_SCORING_DEADLINE_SECONDS"))
    poll_initial_seconds: float = Field(default=5, gt=0)
    poll_max_seconds: float = Field(default=60, gt=0)
    polls_per_history: int = Field(default=20, gt=0)  # then continue_as_new keeps the history bounded
    # Activity retries for transient storage errors. Fixed interval (the Python SDK has no backoff):
    # 5 attempts 8 s apart ride out a storage outage of half a minute, on top of the storage SDK's own retries.
    activity_retry_attempts: int = Field(default=5, gt=0)
    activity_retry_seconds: float = Field(default=8, gt=0)
    local_processes: int = Field(default=2, gt=0)  # torchrun processes of the local backend
    local_max_jobs: int = Field(default=1, gt=0)  # local compute jobs at once; more wait their turn

    # Many models (forecast_job/): one statistical model per partition of an uploaded table.
    # Bigger tables are rejected. The app reads only a table's header; the compute job's prepare step
    # streams the rest (bounded memory) but keeps a copy on its node's disk while it runs.
    max_table_bytes: int = Field(default=64 * 1024**3, gt=0)
    model_registry: str | None = None  # forecast_job.publish --registry; None: index under temp_root/models
    # Promotion gate (forecast_job/gate.py GateRule, whose defaults these are): relative_mae < 1 beats
    # seasonal naive on the holdout; "accuracy" with 0.8 is the source architecture's business rule.
    # Each job carries the rule it was validated under (TrainOptions.gate): training falls back to the
    # best candidate that passes it, publish judges by it.
    gate_metric: Literal["mase", "relative_mae", "smape", "wape", "accuracy"] = "relative_mae"
    gate_threshold: float = 1.0
    local_forecast_workers: int = Field(default=2, gt=0)  # training processes of a local many-models run
    # Real-time forecasts (POST /api/forecast): models loaded on demand into an LRU cache of this
    # many bytes per worker process; after a promotion the `forecast_warm_up` most requested reload.
    forecast_cache_bytes: int = Field(default=128 * 1024**2, gt=0)
    forecast_warm_up: int = Field(default=100, ge=0)
    # A dataset's production map is revalidated (a conditional GET) at most this often: a promotion
    # is served within it, and between revalidations a request resolves its partitions in memory.
    forecast_map_refresh_seconds: float = Field(default=1.0, ge=0)
    max_forecast_horizon: int = Field(default=120, gt=0)
    max_forecast_batch: int = Field(default=100, gt=0)
    aml_forecast_compute: str = "cpu-cluster"
    aml_forecast_environment: str = "restyle-forecast@latest"
    aml_forecast_instance_count: int = Field(default=1, gt=0)
    aml_forecast_processes_per_instance: int = Field(default=4, gt=0)  # one per core of a node

    keep_work_on_success: bool = False  # work/<job>/ is removed after a good run...
    keep_work_on_failure: bool = True  # ...and kept after a failed one, for debugging
    temp_root: Path = Path(tempfile.gettempdir()) / "restyle"
    # A cap on the bytes under temp_root, enforced by devhost (activities past it fail with ENOSPC) so
    # that a roomy local disk behaves like a Flex Consumption instance's ~0.8 GB. Unset: no cap (in
    # Azure the instance's disk is the cap).
    scratch_limit_mb: float | None = Field(default=None, gt=0)

    # Telemetry (restyle/telemetry.py): where spans, metrics and logs go. "azure_monitor" reads
    # APPLICATIONINSIGHTS_CONNECTION_STRING; "otlp" sends OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (the
    # standard OpenTelemetry variables); "console" prints them; "none" exports nothing.
    telemetry_exporter: Literal["none", "console", "otlp", "azure_monitor"] = "none"

    def orchestration_policy(self) -> dict:
        """What the orchestrator needs from settings, passed in its input (orchestrators do no I/O)."""
        keys = ("compute_max_attempts", "compute_deadline_seconds", "poll_initial_seconds", "poll_max_seconds",
                "polls_per_history", "activity_retry_attempts", "activity_retry_seconds", "split_parallelism")
        return {key: getattr(self, key) for key in keys}

    def as_environment(self) -> dict[str, str]:
        """These settings as RESTYLE_* variables, for a child process that reads them back."""
        return {f"RESTYLE_{key.upper()}": str(value) for key, value in self.model_dump().items() if value is not None}

    @property
    def models_root(self) -> Path:
        """Local model registry (index + artifacts) of the local many-models runs."""
        return self.temp_root / "models"

    @property
    def registry_spec(self) -> str:
        return self.model_registry or f"index:{self.models_root / 'registry.sqlite'}"

    @property
    def api_key_hashes(self) -> frozenset[str]:
        return frozenset(part.strip().lower() for part in self.api_key_sha256.split(",") if part.strip())

    @property
    def uses_connection_string(self) -> bool:
        return self.storage_account_url is None

    @property
    def connection_string(self) -> str:
        return self.storage_connection_string or AZURITE_CONNECTION_STRING


@cache
def get_settings() -> Settings:
    return Settings()
