"""Real-time forecasts from registered models, loaded on demand: the code both the Function App's
`POST /api/forecast` and an Azure ML managed online endpoint (online.py) serve with.

With thousands of partitions, models are not preloaded: a request resolves its partitions in the
dataset's production map (production_map.py: one document, revalidated by ETag at most every
second, so a promotion is served within a second, no restart, and no registry call), and each
model is read with one ranged GET of its run's bundle and unpickled on first use into an LRU
cache bounded by bytes. Concurrent requests for the same cold model share one load (single
flight). A version is immutable, so a cached model is never stale: a promotion changes which
version is asked for, and the old one ages out.
"""

from __future__ import annotations

import math
import pickle
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .intervals import as_calibrated
from .levels import DEFAULT_LEVELS, LevelsError, level_name, parse_levels
from .naming import check_dataset, partition_id
from .production_map import ProductionMaps
from .registry import ArtifactStore, ModelVersion

ModelKey = tuple[str, int]  # (registered model name, version)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    loads: int = 0
    evictions: int = 0
    load_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))  # the latest loads

    @property
    def hit_rate(self) -> float | None:
        asked = self.hits + self.misses
        return self.hits / asked if asked else None


class ModelCache:
    """Least recently used models, at most `max_bytes` of pickled size (a model's pickle is its
    fitted state: the loaded object is the same arrays). A model bigger than the bound is served
    but not kept. `on_load(seconds)` and `on_lookup(hit)` report to the caller's metrics."""

    def __init__(self, max_bytes: int, on_load: Callable[[float], None] | None = None,
                 on_lookup: Callable[[bool], None] | None = None) -> None:
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._entries: OrderedDict[ModelKey, tuple[object, int]] = OrderedDict()
        self._loading: dict[ModelKey, Future] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self._on_load = on_load or (lambda seconds: None)
        self._on_lookup = on_lookup or (lambda hit: None)

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: ModelKey, fetch: Callable[[], bytes]) -> object:
        """The model for `key`, from the cache or from `fetch()` (its pickle), loaded once however
        many requests ask for it at the same time."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self.stats.hits += 1
            else:
                self.stats.misses += 1
                pending = self._loading.get(key)
                if pending is None:
                    pending = self._loading[key] = Future()
                    loading_here = True
                else:
                    loading_here = False
        self._on_lookup(entry is not None)
        if entry is not None:
            return entry[0]
        if not loading_here:
            return pending.result()  # another request is loading it: share its result (or its error)
        return self._load(key, fetch, pending)

    def _load(self, key: ModelKey, fetch: Callable[[], bytes], pending: Future) -> object:
        try:
            started = time.perf_counter()
            data = fetch()
            model = pickle.loads(data)
            seconds = time.perf_counter() - started
        except BaseException as error:
            with self._lock:
                del self._loading[key]
            pending.set_exception(error)
            raise
        with self._lock:
            del self._loading[key]
            self.stats.loads += 1
            self.stats.load_seconds.append(seconds)
            self._keep(key, model, len(data))
        self._on_load(seconds)
        pending.set_result(model)
        return model

    def _keep(self, key: ModelKey, model: object, size: int) -> None:
        if size > self.max_bytes:
            return
        self._entries[key] = (model, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= evicted
            self.stats.evictions += 1


class UnknownPartition(LookupError):
    """No production model for these partition keys in this dataset."""


@dataclass(frozen=True)
class Forecast:
    keys: dict[str, str]
    model: ModelVersion
    timestamps: list[str]
    values: list[float]
    bounds: dict[str, list[float | None]] = field(default_factory=dict)  # lo_<level> / hi_<level> -> per step

    def as_dict(self) -> dict:
        version = self.model
        short = ({"observations": version.observations, "reason": version.short_history}
                 if version.short_history else None)
        steps = [{"timestamp": t, "mean": v, **{name: values[i] for name, values in self.bounds.items()}}
                 for i, (t, v) in enumerate(zip(self.timestamps, self.values, strict=True))]
        return {"keys": self.keys,
                "model": {"name": version.name, "version": version.version, "type": version.model_type,
                          "run_id": version.run_id, "flagged": version.flagged, "short_history": short,
                          "metrics": version.metrics},
                "forecast": steps}


class Forecaster:
    """Production maps + artifacts + cache. After a request sees a partition's production version
    change (a promotion), the `warm_up` most requested partitions are loaded in the background, so
    their first requests after the promotion do not pay the load."""

    def __init__(self, maps: ProductionMaps, artifacts: ArtifactStore, cache: ModelCache, warm_up: int = 0) -> None:
        self.maps, self.artifacts, self.cache, self.warm_up = maps, artifacts, cache, warm_up
        self.requests: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()
        self._served: dict[str, int] = {}
        self._warming = ThreadPoolExecutor(1, thread_name_prefix="warm-up") if warm_up else None

    def production(self, dataset: str, keys: Mapping[str, str]) -> ModelVersion:
        production = self.maps.get(dataset)
        found = production.partitions.get(partition_id(dict(keys))) if production is not None else None
        if found is None:
            raise UnknownPartition(f"no production model for {dict(keys)} in dataset {dataset!r}")
        return found

    def forecast(self, dataset: str, keys: Mapping[str, str], horizon: int,
                 levels: Sequence[float] = DEFAULT_LEVELS) -> Forecast:
        version = self.production(dataset, keys)
        self.requests[(dataset, tuple(sorted(keys.items())))] += 1
        previous = self._served.get(version.name)
        self._served[version.name] = version.version
        if previous is not None and previous != version.version and self._warming is not None:
            self._warming.submit(self._warm_most_requested)
        predicted = as_calibrated(self._load(version)).intervals(horizon, levels)
        bounds = {}
        for level in levels:
            for side, values in zip(("lo", "hi"), predicted.bounds[float(level)], strict=True):
                bounds[f"{side}_{level_name(level)}"] = [_number(v) for v in values]
        return Forecast(dict(keys), version, future_timestamps(version.last_timestamp, version.freq, horizon),
                        [float(v) for v in predicted.mean], bounds)

    def _load(self, version: ModelVersion) -> object:
        return self.cache.get((version.name, version.version), lambda: self.artifacts.get(version.artifact))

    def _warm_most_requested(self) -> None:
        for (dataset, keys), _ in self.requests.most_common(self.warm_up):
            try:
                self._load(self.production(dataset, dict(keys)))
            except (LookupError, OSError, ValueError):
                continue  # a partition that lost its model or artifact is answered by its own requests


def _number(value: float) -> float | None:
    """JSON has no NaN: a bound that could not be estimated (a history of one point) is null."""
    return float(value) if math.isfinite(value) else None


def future_timestamps(last: str, freq: str, horizon: int) -> list[str]:
    """The `horizon` periods after the last fitted observation, ISO 8601."""
    import pandas as pd

    return [stamp.isoformat() for stamp in pd.date_range(pd.Timestamp(last), periods=horizon + 1, freq=freq)[1:]]


# --- requests, as both front ends take them (api/forecast.py, online.py) -----------------------

REQUEST_FIELDS = {"dataset", "keys", "partitions", "horizon", "levels"}
EXAMPLE = '{"dataset": "sales", "keys": {"store": "12"}, "horizon": 6, "levels": [80, 95]}'


class BadRequest(ValueError):
    """A request the forecast endpoint refuses: a stable code and a sentence for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ForecastRequest:
    dataset: str
    partitions: list[dict[str, str]]
    horizon: int
    levels: tuple[float, ...] = DEFAULT_LEVELS

    @classmethod
    def parse(cls, body: object, max_horizon: int, max_batch: int) -> ForecastRequest:
        """`{"dataset", "keys" | "partitions", "horizon", "levels"?}`, or BadRequest naming what is wrong."""
        if not isinstance(body, dict):
            raise BadRequest("invalid_body", f"the body must be a JSON object like {EXAMPLE}")
        unknown = sorted(set(body) - REQUEST_FIELDS)
        if unknown:
            raise BadRequest("invalid_body", f"unknown fields {unknown}; allowed: {', '.join(sorted(REQUEST_FIELDS))}")
        return cls(_dataset(body.get("dataset")), _partitions(body, max_batch),
                   _horizon(body.get("horizon"), max_horizon), _levels(body.get("levels", list(DEFAULT_LEVELS))))


def _dataset(value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest("invalid_dataset", '`dataset` must name the table\'s dataset (e.g. "sales")')
    try:
        return check_dataset(value)
    except ValueError as error:
        raise BadRequest("invalid_dataset", str(error)) from None


def _partitions(body: dict, max_batch: int) -> list[dict[str, str]]:
    if ("keys" in body) == ("partitions" in body):
        raise BadRequest("invalid_keys", "give either `keys` (one partition) or `partitions` (a list)")
    partitions = [body["keys"]] if "keys" in body else body["partitions"]
    if not isinstance(partitions, list) or not partitions:
        raise BadRequest("invalid_keys", "`partitions` must be a non-empty list of key objects")
    if len(partitions) > max_batch:
        raise BadRequest("invalid_keys", f"{len(partitions)} partitions in one request; the limit is {max_batch}")
    for keys in partitions:
        if not isinstance(keys, dict) or not keys or not all(
                isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in keys.items()):
            raise BadRequest("invalid_keys", f'partition keys must be a non-empty object of strings, e.g. '
                                             f'{{"store": "12"}}; got {keys!r}')
    return partitions


def _horizon(value: object, max_horizon: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= max_horizon:
        raise BadRequest("invalid_horizon", f"`horizon` must be a whole number of periods from 1 to {max_horizon}; "
                                            f"got {value!r}")
    return value


def _levels(value: object) -> tuple[float, ...]:
    try:
        return parse_levels(value if isinstance(value, list) else [value] if isinstance(value, int | float) else value)
    except LevelsError as error:
        raise BadRequest("invalid_levels", str(error)) from None


def answer(forecaster: Forecaster, request: ForecastRequest) -> dict:
    """Every partition's forecast, or UnknownPartition naming those with no production model."""
    answers, unknown = [], []
    for keys in request.partitions:
        try:
            answers.append(forecaster.forecast(request.dataset, keys, request.horizon, request.levels).as_dict())
        except UnknownPartition:
            unknown.append(keys)
    if unknown:
        more = " ..." if len(unknown) > 5 else ""
        raise UnknownPartition(f"no production model in dataset {request.dataset!r} for {unknown[:5]}{more}")
    return {"dataset": request.dataset, "horizon": request.horizon, "levels": list(request.levels),
            "forecasts": answers}
