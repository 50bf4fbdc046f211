"""POST /api/forecast: forecast_job/serving.py behind the Function App's HTTP API.

Body: `{"dataset": "sales", "keys": {"store": "12", "brand": "a"}, "horizon": 6}`, or a batch with
`"partitions": [{...}, {...}]` instead of `keys`. One Forecaster per worker process, built from
settings on first use: the production maps and the model bundles in the work container's
`models/`, read with the app's storage identity (no registry call, locally or in Azure), and an
LRU cache of settings.forecast_cache_bytes.
"""

from __future__ import annotations

from functools import cache

from forecast_job.azureml import MODELS_FOLDER
from forecast_job.production_map import ContainerMaps, ProductionMaps
from forecast_job.serving import BadRequest, Forecaster, ForecastRequest, ModelCache, UnknownPartition, answer
from restyle.model_artifacts import AppArtifacts
from restyle.settings import Settings
from restyle.storage import app_store
from restyle.telemetry import record_forecast_cache, record_model_lookup

from .errors import ApiError


@cache
def app_forecaster() -> Forecaster:
    store = app_store()
    settings = store.settings
    models = ModelCache(settings.forecast_cache_bytes, on_load=lambda seconds: record_forecast_cache(models, seconds),
                        on_lookup=record_model_lookup)
    container = store.service.get_container_client(settings.work_container)
    maps = ProductionMaps(ContainerMaps(container, f"{MODELS_FOLDER}/"), settings.forecast_map_refresh_seconds)
    return Forecaster(maps, AppArtifacts(store), models, settings.forecast_warm_up)


def forecast_request(forecaster: Forecaster, settings: Settings, body: object) -> dict:
    """The answer to one request (blocking: registry lookups, model loads); 400/404 as ApiError."""
    try:
        return answer(forecaster, ForecastRequest.parse(body, settings.max_forecast_horizon,
                                                         settings.max_forecast_batch))
    except BadRequest as error:
        raise ApiError(400, error.code, str(error)) from None
    except UnknownPartition as error:
        raise ApiError(404, "partition_not_found", str(error)) from None
