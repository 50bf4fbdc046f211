"""Scoring script of an Azure ML managed online endpoint serving the same forecasts as the Function
App's POST /api/forecast, with the same code (serving.py): for when the Function App is not the
right host (see docs/many-models.md: sustained load, private networking, GPU-sized models).

It reads what the app reads, with the deployment's own managed identity (Storage Blob Data Reader
on the data account): each dataset's production map and the model bundles in the work
container's `models/` (no datastore mount, no registry call: a model registered after the
deployment is served as soon as its run's map names it). Environment of the deployment
(aml_deployment.py sets it):
    FORECAST_STORAGE_ACCOUNT_URL  the data account's blob endpoint (https://<account>.blob.core.windows.net)
    FORECAST_CONTAINER            the work container; FORECAST_DATASTORE its Azure ML datastore's name
    FORECAST_CACHE_BYTES          LRU cache bound (default 128 MiB), FORECAST_WARM_UP (default 100)
    FORECAST_MAP_REFRESH_SECONDS  (default 1), FORECAST_MAX_HORIZON (default 120), FORECAST_MAX_BATCH (default 100)
    AZURE_CLIENT_ID               the user-assigned identity to read storage with (none: system-assigned)
Answers are JSON; refused requests come back with status 400/404 and `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import json
import os

from .production_map import ContainerMaps, ProductionMaps
from .registry import split_range
from .serving import BadRequest, Forecaster, ForecastRequest, ModelCache, UnknownPartition, answer

MODELS_PREFIX = "models/"
DATASTORE_URI = "azureml://datastores/"
_state: dict = {}


class DatastoreArtifacts:
    """Model bytes named by datastore URIs (azureml://datastores/<ds>/paths/<path>[#bytes=a-b]),
    read from the blob container behind that datastore: one ranged GET per model."""

    def __init__(self, container_client, datastore: str) -> None:
        self.container, self.prefix = container_client, f"{DATASTORE_URI}{datastore}/paths/"

    def get(self, uri: str) -> bytes:
        uri, span = split_range(uri)
        if not uri.startswith(self.prefix):
            raise ValueError(f"{uri} is not on the datastore {self.prefix}")
        offset, length = span or (0, None)
        blob = self.container.get_blob_client(uri[len(self.prefix):])
        return blob.download_blob(offset=offset, length=length).readall()


def container_from_environment(env=os.environ):
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(env["FORECAST_STORAGE_ACCOUNT_URL"],
                                credential=DefaultAzureCredential(managed_identity_client_id=env.get("AZURE_CLIENT_ID")))
    return service.get_container_client(env.get("FORECAST_CONTAINER", "work"))


def init(container=None) -> None:
    """`container`: a ContainerClient to read from (tests pass Azurite's); else from the environment."""
    env = os.environ
    container = container or container_from_environment(env)
    maps = ProductionMaps(ContainerMaps(container, MODELS_PREFIX), float(env.get("FORECAST_MAP_REFRESH_SECONDS", 1)))
    artifacts = DatastoreArtifacts(container, env.get("FORECAST_DATASTORE", "work"))
    cache = ModelCache(int(env.get("FORECAST_CACHE_BYTES", 128 * 1024**2)))
    _state["forecaster"] = Forecaster(maps, artifacts, cache, int(env.get("FORECAST_WARM_UP", 100)))
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
