"""The Azure ML workspace's model registry as the record of every partition's versions.

What Azure ML supports, read in its SDK and docs rather than assumed:
- a model asset of type `custom_model` whose `path` is a datastore URI (azureml://datastores/<ds>/
  paths/<path>), with string tags: azure-ai-ml 1.35, `azure.ai.ml.entities.Model` and
  `ModelOperations.create_or_update` (azure/ai/ml/operations/_model_operations.py);
- a version is immutable: registering a name and version again with another path is refused
  ("service side raises an exception if we attempt to update an existing asset's path", ibid.);
- without an explicit version, `create_or_update` first reads the model's versions to pick the
  next number (`_get_next_version_from_container`), so this module always passes the number
  (publish assigns it from the production map: production_map.MapRegistry);
- MLflow on a workspace has no registered-model aliases and no search by tag (the support matrix in
  MicrosoftDocs/azure-docs, articles/machine-learning/how-to-manage-models-mlflow.md), which is why
  the production alias is the production map, not a registry feature.

Every call is one HTTP round trip or two, so a 10,000-partition run registers with WORKERS calls in
flight at once; a version that exists already (a repeated publish) counts as registered.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from .registry import ModelVersion, NewVersion, split_range

WORKERS = 16  # registrations in flight: the workspace's API rate, not this machine, bounds a run
JOB_ENVIRONMENT = ("AZUREML_ARM_SUBSCRIPTION", "AZUREML_ARM_RESOURCEGROUP", "AZUREML_ARM_WORKSPACE_NAME")


def model_spec(version: ModelVersion):
    """The model asset one version is registered as: its bundle on the datastore, its byte range
    and everything the registry records as tags (strings, as Azure ML stores them)."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    bundle, span = split_range(version.artifact)
    tags = {**version.tags(), "artifact": version.artifact}
    return Model(name=version.name, version=str(version.version), type=AssetTypes.CUSTOM_MODEL, path=bundle,
                 tags=tags, description=f"{version.model_type} for {version.keys} (run {version.run_id})"
                 + (f", bytes {span[0]}..{span[0] + span[1] - 1} of the bundle" if span else ""))


class WorkspaceRegistry:
    """Registers versions (with the numbers the caller assigned) into an Azure ML workspace."""

    def __init__(self, ml_client, workers: int = WORKERS) -> None:
        self.ml_client, self.workers = ml_client, workers

    @classmethod
    def from_job_environment(cls) -> WorkspaceRegistry:
        """The workspace an Azure ML job runs in, with the job's managed identity."""
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential

        missing = [name for name in JOB_ENVIRONMENT if not os.environ.get(name)]
        if missing:
            raise ValueError(f"--registry aml: runs inside an Azure ML job; {', '.join(missing)} not set")
        subscription, group, workspace = (os.environ[name] for name in JOB_ENVIRONMENT)
        return cls(MLClient(DefaultAzureCredential(), subscription, group, workspace))

    def register_many(self, versions: Iterable[NewVersion]) -> list[ModelVersion]:
        now = time.time()
        records = []
        for new in versions:
            if new.version is None:
                raise ValueError(f"{new.name}: the workspace registry needs the version number from the caller")
            records.append(ModelVersion(new.name, new.version, new.dataset, new.partition_id, new.run_id,
                                        new.model_type, dict(new.keys), dict(new.metrics), new.artifact,
                                        new.baseline_artifact, new.flagged, new.last_timestamp, new.freq, now,
                                        observations=new.observations, short_history=new.short_history))
        with ThreadPoolExecutor(self.workers, thread_name_prefix="register") as pool:
            list(pool.map(self._register, records))
        return records

    def _register(self, version: ModelVersion) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):  # registered by an earlier delivery of this publish
            self.ml_client.models.create_or_update(model_spec(version))

    def set_aliases(self, assignments, alias: str = "production") -> None:
        """Nothing to do: the workspace has no aliases; the production map holds production."""
