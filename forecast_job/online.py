"""Scoring script of an Azure ML managed online endpoint serving the same forecasts as the Function
App's POST /api/forecast, with the same code (serving.py): for when the Function App is not the
right host (see docs/many-models.md: sustained load, private networking, GPU-sized models).

Environment of the deployment:
    FORECAST_REGISTRY       index:PATH or mlflow:URI (`mlflow:` alone: the workspace's MLFLOW_TRACKING_URI)
    FORECAST_ARTIFACTS      a folder where the artifacts are mounted (the work datastore's models/)
    FORECAST_ARTIFACT_URI   the URI prefix the registry records for that folder (azureml://datastores/work/paths/models)
    FORECAST_CACHE_BYTES    LRU cache bound (default 128 MiB), FORECAST_WARM_UP (default 100)
    FORECAST_MAX_HORIZON    (default 120), FORECAST_MAX_BATCH (default 100)
Answers are JSON; refused requests come back with status 400/404 and `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .publish import open_registry
from .registry import FolderArtifacts
from .serving import BadRequest, Forecaster, ForecastRequest, ModelCache, UnknownPartition, answer

_state: dict = {}


def init() -> None:
    env = os.environ
    artifacts = FolderArtifacts(Path(env["FORECAST_ARTIFACTS"]), env.get("FORECAST_ARTIFACT_URI"))
    cache = ModelCache(int(env.get("FORECAST_CACHE_BYTES", 128 * 1024**2)))
    _state["forecaster"] = Forecaster(open_registry(env["FORECAST_REGISTRY"]), artifacts, cache,
                                      int(env.get("FORECAST_WARM_UP", 100)))
    _state["limits"] = (int(env.get("FORECAST_MAX_HORIZON", 120)), int(env.get("FORECAST_MAX_BATCH", 100)))


def run(raw_data: str):
    """One request body (JSON text) -> the answer, or an AMLResponse with 400/404."""
    try:
        body = json.loads(raw_data)
    except json.JSONDecodeError as error:
        return _refuse(400, "invalid_json", f"request body is not valid JSON: {error}")
    try:
        return answer(_state["forecaster"], ForecastRequest.parse(body, *_state["limits"]))
    except BadRequest as error:
        return _refuse(400, error.code, str(error))
    except UnknownPartition as error:
        return _refuse(404, "partition_not_found", str(error))


def _refuse(status: int, code: str, message: str):
    payload = {"error": {"code": code, "message": message}}
    try:
        from azureml.contrib.services.aml_response import AMLResponse  # present in Azure ML's inference server
    except ImportError:
        return {"status": status, **payload}
    return AMLResponse(json.dumps(payload), status)
