"""POST /api/forecast as plain functions: validate the request, forecast each partition from its
production model (forecast_job/serving.py), answer with versions and metrics.

Body: `{"dataset": "sales", "keys": {"store": "12", "brand": "a"}, "horizon": 6}`, or a batch with
`"partitions": [{...}, {...}]` instead of `keys`. One Forecaster per worker process, built from
settings on first use: the registry (settings.registry_spec), artifacts read with the app's
storage identity, an LRU cache of settings.forecast_cache_bytes.
"""

from __future__ import annotations

from functools import cache

from forecast_job.naming import check_dataset
from forecast_job.publish import open_registry
from forecast_job.serving import Forecaster, ModelCache, UnknownPartition
from restyle.model_artifacts import AppArtifacts
from restyle.settings import Settings
from restyle.storage import app_store
from restyle.telemetry import record_forecast_cache, record_model_lookup

from .errors import ApiError

FIELDS = {"dataset", "keys", "partitions", "horizon"}


@cache
def app_forecaster() -> Forecaster:
    store = app_store()
    settings = store.settings
    models = ModelCache(settings.forecast_cache_bytes, on_load=lambda seconds: record_forecast_cache(models, seconds),
                        on_lookup=record_model_lookup)
    return Forecaster(open_registry(settings.registry_spec), AppArtifacts(store), models, settings.forecast_warm_up)


def parse_request(body: object, settings: Settings) -> tuple[str, list[dict[str, str]], int]:
    """(dataset, partitions' keys, horizon), or ApiError 400 naming what is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", 'the body must be a JSON object like '
                                            '{"dataset": "sales", "keys": {"store": "12"}, "horizon": 6}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(400, "invalid_body", f"unknown fields {unknown}; allowed: {', '.join(sorted(FIELDS))}")
    dataset = body.get("dataset")
    try:
        dataset = check_dataset(dataset) if isinstance(dataset, str) else None
    except ValueError as error:
        raise ApiError(400, "invalid_dataset", str(error)) from None
    if dataset is None:
        raise ApiError(400, "invalid_dataset", "`dataset` must name the table's dataset (e.g. \"sales\")")
    if ("keys" in body) == ("partitions" in body):
        raise ApiError(400, "invalid_keys", "give either `keys` (one partition) or `partitions` (a list)")
    partitions = [body["keys"]] if "keys" in body else body["partitions"]
    if not isinstance(partitions, list) or not partitions:
        raise ApiError(400, "invalid_keys", "`partitions` must be a non-empty list of key objects")
    if len(partitions) > settings.max_forecast_batch:
        raise ApiError(400, "invalid_keys", f"{len(partitions)} partitions in one request; "
                                            f"the limit is {settings.max_forecast_batch}")
    for keys in partitions:
        if not isinstance(keys, dict) or not keys or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in keys.items()):
            raise ApiError(400, "invalid_keys", f"partition keys must be a non-empty object of strings, "
                                                f"e.g. {{\"store\": \"12\"}}; got {keys!r}")
    horizon = body.get("horizon")
    if not isinstance(horizon, int) or isinstance(horizon, bool) or not 1 <= horizon <= settings.max_forecast_horizon:
        raise ApiError(400, "invalid_horizon", f"`horizon` must be a whole number of periods from 1 to "
                                               f"{settings.max_forecast_horizon}; got {horizon!r}")
    return dataset, partitions, horizon


def forecast_request(forecaster: Forecaster, settings: Settings, body: object) -> dict:
    """The answer to one request (blocking: registry lookups, model loads): every partition's
    forecast, or 404 naming the partitions with no production model."""
    dataset, partitions, horizon = parse_request(body, settings)
    answers, unknown = [], []
    for keys in partitions:
        try:
            answers.append(forecaster.forecast(dataset, keys, horizon).as_dict())
        except UnknownPartition:
            unknown.append(keys)
    if unknown:
        raise ApiError(404, "partition_not_found", f"no production model in dataset {dataset!r} for "
                                                   f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}")
    return {"dataset": dataset, "horizon": horizon, "forecasts": answers}
