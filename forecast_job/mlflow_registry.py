"""The registry over MLflow's model registry: the Azure ML workspace's (tracking URI from the
workspace, `workspace_tracking_uri`) or a local MLflow SQLite store, with the same lookups as the
index (registry.py). mlflow is imported only here.

Costs measured through MLflow's SQLite store (bench/many_models.py): 37.7 ms a model for
create-model + create-version + set-alias (load average ~5; 16 ms at ~2.8), one at a time (MLflow
has no bulk call), so 10,000 partitions spend about six minutes here where the index spends about
a second. Hence local runs register into the index, and `publish --registry mlflow:URI` registers
the same versions here where a workspace registry is wanted (the Azure ML pipeline's publish step).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from .registry import KEY_PREFIX, METRIC_PREFIX, PRODUCTION, ModelNotFound, ModelVersion, NewVersion


def workspace_tracking_uri(ml_client, workspace_name: str) -> str:
    """The Azure ML workspace's MLflow tracking URI (azureml://...), which needs the azureml-mlflow
    plugin to be installed where it is used. Inside an Azure ML job MLFLOW_TRACKING_URI is set already."""
    return ml_client.workspaces.get(workspace_name).mlflow_tracking_uri


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


class MlflowRegistry:
    def __init__(self, tracking_uri: str, registry_uri: str | None = None) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri or tracking_uri)

    def _convert(self, mv) -> ModelVersion:
        tags = dict(mv.tags or {})
        return ModelVersion(
            name=mv.name, version=int(mv.version), dataset=tags.get("dataset", ""),
            partition_id=tags.get("partition_id", ""), run_id=tags.get("run_id", ""),
            model_type=tags.get("model_type", ""),
            keys={k[len(KEY_PREFIX):]: v for k, v in tags.items() if k.startswith(KEY_PREFIX)},
            metrics={k[len(METRIC_PREFIX):]: float(v) for k, v in tags.items() if k.startswith(METRIC_PREFIX)},
            artifact=mv.source, baseline_artifact=tags.get("baseline_artifact", ""),
            flagged=tags.get("flagged") == "true", last_timestamp=tags.get("last_timestamp", ""),
            freq=tags.get("freq", ""), created=(mv.creation_timestamp or 0) / 1000,
            aliases=tuple(sorted(getattr(mv, "aliases", None) or ())),
            observations=int(tags.get("observations") or 0), short_history=tags.get("short_history", ""))

    def _search(self, filter_string: str) -> list[ModelVersion]:
        found, token = [], None
        while True:
            page = self.client.search_model_versions(filter_string, max_results=1000, page_token=token)
            found.extend(self._convert(mv) for mv in page)
            token = page.token
            if not token:
                break
        return sorted(found, key=lambda v: (v.name, v.version))

    def register_many(self, versions: Iterable[NewVersion]) -> list[ModelVersion]:
        from mlflow.exceptions import MlflowException

        registered = []
        for new in versions:
            previous = [v for v in self._search(f"name = {_quoted(new.name)} and tags.run_id = {_quoted(new.run_id)}")
                        if v.flagged == new.flagged]
            if previous:
                registered.append(previous[0])
                continue
            try:
                self.client.create_registered_model(new.name, tags={"dataset": new.dataset,
                                                                    "partition_id": new.partition_id,
                                                                    **{KEY_PREFIX + k: v for k, v in new.keys.items()}})
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            draft = ModelVersion(new.name, 0, new.dataset, new.partition_id, new.run_id, new.model_type,
                                 dict(new.keys), dict(new.metrics), new.artifact, new.baseline_artifact, new.flagged,
                                 new.last_timestamp, new.freq, observations=new.observations,
                                 short_history=new.short_history)
            mv = self.client.create_model_version(new.name, source=new.artifact, tags=draft.tags(),
                                                  description=json.dumps(new.keys))
            registered.append(self._convert(mv))
        return registered

    def versions(self, name: str) -> list[ModelVersion]:
        return self._search(f"name = {_quoted(name)}")

    def get(self, name: str, version: int) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        try:
            return self._convert(self.client.get_model_version(name, str(version)))
        except MlflowException:
            raise ModelNotFound(f"model {name} has no version {version}") from None

    def by_alias(self, name: str, alias: str = PRODUCTION) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self._convert(self.client.get_model_version_by_alias(name, alias))
        except MlflowException:
            return None

    def set_aliases(self, assignments: Iterable[tuple[str, int]], alias: str = PRODUCTION) -> None:
        for name, version in assignments:
            self.client.set_registered_model_alias(name, alias, str(version))

    def search(self, tags: Mapping[str, str], alias: str | None = None) -> list[ModelVersion]:
        clauses = [f"tags.`{key}` = {_quoted(value)}" for key, value in tags.items()]
        found = self._search(" and ".join(clauses))
        if alias is None:
            return found
        # search results carry no aliases (MLflow's SQL store leaves them out): ask per model name
        holders = {name: self.by_alias(name, alias) for name in {v.name for v in found}}
        return [v for v in found if holders[v.name] is not None and holders[v.name].version == v.version]
