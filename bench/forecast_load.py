"""Real-time forecast load: POST /api/forecast on devhost + Azurite over the M3 monthly models.

    python bench/forecast_load.py [--requests 3000] [--caches-mb 0.5,64] [--model-set fast]
    python bench/forecast_load.py --quick          (smoke: 20 series, 60 requests, one cache; forecast_load.quick.json)

The 1,428 M3 monthly series are uploaded to tables/ and trained, registered and gated by the app's
own pipeline (local backend; `--model-set`, default fast, so the setup takes a minute). Then, for
each cache size, a fresh devhost (its own worker process, so a cold cache) serves a bounded load
from 4 client threads on loopback: partition keys drawn Zipf-like (s = 1.1) over all partitions,
horizon 12. A request is "cold" when it is the first for its partition in that phase (a cache
miss: blob-free local artifact read + unpickle), else "warm". Halfway, the 20 most requested
partitions are promoted to a new version (a re-registration, as a re-training run would do):
every later answer for them must carry the new version. devhost's RSS is sampled meanwhile, and
the pickled bytes of every model the phase asked for are summed (what an unbounded cache would hold).
Writes bench/results/forecast_load.json and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from e2e_support import ENDED, app_env, running_stack, wait_for  # noqa: E402
from load import rss_mb  # noqa: E402

from bench.report import BenchReport, quick_path  # noqa: E402
from devhost.process import DevhostProcess  # noqa: E402
from forecast_job.registry import IndexRegistry, NewVersion  # noqa: E402
from tools.azurite import free_port  # noqa: E402
from tools.competition_series import monthly  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "forecast_load.json"
DATASET = "m3-monthly"
HORIZON = 12
CLIENTS = 4
PROMOTED = 20


def p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def train_models(stack, series: int | None, model_set: str) -> tuple[list[dict], float]:
    """Upload the M3 monthly table and let the pipeline train it; returns the partitions' keys."""
    table = monthly("m3", limit=series).table.rename(columns={"series": "series_id"})
    data = io.BytesIO()
    table.to_csv(data, index=False)
    client = stack.container("tables").get_blob_client(f"{DATASET}.csv")
    started = time.perf_counter()
    client.upload_blob(data.getvalue(), overwrite=True, metadata={"model_set": model_set, "horizon": "18"})
    host = stack.host
    job = wait_for(lambda: next((j for j in host.request("GET", "/api/jobs")[1]["jobs"]
                                 if j["blob"] == f"{DATASET}.csv"), None), 60, "the training job")
    done = wait_for(lambda: (lambda j: j if j["status"] in ENDED else None)(host.request(
        "GET", f"/api/jobs/{job['id']}")[1]), 1800, "training", interval=2)
    if done["status"] != "Completed":
        raise SystemExit(f"training failed: {done}")
    return [{"series_id": name} for name in table["series_id"].unique()], time.perf_counter() - started


def promote(registry_path: Path, keys: list[dict]) -> list[str]:
    """New production versions for these partitions (the same fitted model, re-registered)."""
    from forecast_job.registry import find_production

    registry = IndexRegistry(registry_path)
    current = [find_production(registry, DATASET, k) for k in keys]
    fresh = registry.register_many(NewVersion(v.dataset, "bench-promotion", v.keys, v.model_type, v.metrics,
                                              v.artifact, v.baseline_artifact, last_timestamp=v.last_timestamp,
                                              freq=v.freq, partition_id=v.partition_id) for v in current)
    registry.set_aliases([(v.name, v.version) for v in fresh])
    registry.close()
    return [f"{v.name}@{v.version}" for v in fresh]


def model_size(registry_path: Path, dataset: str, keys: dict) -> int:
    """Bytes of the pickle of the partition's production model (a file:// artifact of a local run)."""
    from urllib.parse import unquote, urlparse

    from forecast_job.registry import find_production

    registry = IndexRegistry(registry_path)
    try:
        return Path(unquote(urlparse(find_production(registry, dataset, keys).artifact).path)).stat().st_size
    finally:
        registry.close()


def load_phase(host: DevhostProcess, keys: list[dict], requests: int, registry_path: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, len(keys) + 1) ** 1.1
    order = rng.permutation(len(keys))  # which partitions are popular: random, not the first rows
    draws = order[rng.choice(len(keys), size=requests, p=weights / weights.sum())]
    popular = [keys[i] for i, _ in Counter(draws.tolist()).most_common(PROMOTED)]
    seen: set[int] = set()
    lock = threading.Lock()
    samples: list[tuple[float, bool, int, int, str, int]] = []  # seconds, cold, index, status, name, version
    cursor = iter(enumerate(draws.tolist()))
    promoted: dict = {}
    rss = [rss_mb(host.process.pid)]
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(0.2):
            rss.append(rss_mb(host.process.pid))

    def client() -> None:
        while True:
            with lock:
                item = next(cursor, None)
                if item is None:
                    return
                position, index = item
                cold = index not in seen
                seen.add(index)
                if position == requests // 2 and not promoted:
                    promoted["names"] = promote(registry_path, popular)
                    promoted["at"] = position
            started = time.perf_counter()
            status, answer = host.request("POST", "/api/forecast",
                                          {"dataset": DATASET, "keys": keys[index], "horizon": HORIZON})
            seconds = time.perf_counter() - started
            model = answer["forecasts"][0]["model"] if status == 200 else {"name": "", "version": 0}
            with lock:
                samples.append((seconds, cold, position, status, model["name"], model["version"]))

    threading.Thread(target=sampler, daemon=True).start()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    stop.set()
    new_versions = {name.rsplit("@", 1)[0]: int(name.rsplit("@", 1)[1]) for name in promoted.get("names", [])}
    after = [s for s in samples if s[4] in new_versions and s[2] > promoted.get("at", requests) + CLIENTS]
    stale = [s for s in after if s[5] != new_versions[s[4]]]
    model_bytes = sum(model_size(registry_path, DATASET, keys[index]) for index in seen)
    warm = [s[0] * 1000 for s in samples if not s[1] and s[3] == 200]
    cold = [s[0] * 1000 for s in samples if s[1] and s[3] == 200]
    return {"requests": len(samples), "errors": sum(1 for s in samples if s[3] != 200), "wall_s": round(wall, 1),
            "requests_per_s": round(len(samples) / wall, 1), "partitions_hit": len(seen),
            "model_mb_hit": round(model_bytes / 1024**2, 2),
            "warm": len(warm), "warm_p50_ms": p(warm, 50), "warm_p95_ms": p(warm, 95),
            "cold": len(cold), "cold_p50_ms": p(cold, 50), "cold_p95_ms": p(cold, 95),
            "client_side_hit_rate": round(len(warm) / max(len(samples), 1), 3),
            "rss_start_mb": round(rss[0], 1), "rss_peak_mb": round(max(rss), 1), "rss_end_mb": round(rss[-1], 1),
            "promotion": {"promoted": len(new_versions), "answers_after": len(after), "stale_answers": len(stale)}}


def run(results: BenchReport, requests: int, caches_mb: list[float], series: int | None, model_set: str) -> None:
    results.update({"dataset": f"M3 monthly ({series or 1428} series), model set {model_set}",
                    "clients": CLIENTS, "horizon": HORIZON, "zipf_s": 1.1, "phases": []})
    with tempfile.TemporaryDirectory(prefix="forecast-load-") as folder, \
            running_stack(Path(folder), poll_initial_seconds="1", poll_max_seconds="2",
                          local_forecast_workers="2") as stack:
        with results.part("train"):
            keys, seconds = train_models(stack, series, model_set)
            results["setup"] = {"partitions": len(keys), "train_register_gate_forecast_s": round(seconds, 1)}
        stack.host.stop()  # the training host; each phase gets a fresh worker with its cache size
        registry = stack.temp_root / "models" / "registry.sqlite"
        for index, cache_mb in enumerate(caches_mb):
            env = app_env(stack.containers, stack.scratch, forecast_cache_bytes=str(int(cache_mb * 1024**2)))
            host = DevhostProcess(free_port(), stack.scratch / "state", stack.azurite.connection,
                                  stack.scratch / f"serve-{index}.log", env=env).start()
            try:
                with results.part(f"cache {cache_mb:g} MB"):
                    host.request("POST", "/api/forecast", {"dataset": DATASET, "keys": keys[0], "horizon": 1})
                    results["phases"].append({"cache_mb": cache_mb, **load_phase(host, keys, requests, registry,
                                                                                 seed=index)})
            finally:
                host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--caches-mb", default="0.5,64", help="cache sizes to compare, MB, comma-separated")
    parser.add_argument("--model-set", default="fast", choices=["fast", "default", "full"])
    parser.add_argument("--quick", action="store_true", help="smoke: 20 series, 60 requests, one cache size")
    parser.add_argument("--output", type=Path, default=None, help=f"default {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    series, requests = (20, 60) if args.quick else (None, args.requests)
    caches = "64" if args.quick else args.caches_mb
    results = BenchReport(quick_path(RESULTS, args.quick, args.output), "forecast_load", quick=args.quick)
    run(results, requests, [float(x) for x in caches.split(",")], series, args.model_set)
    print(json.dumps(results, indent=1))
    print("| cache | requests | errors | warm p50 / p95 | cold p50 / p95 | hit rate | models asked for "
          "| RSS start / peak | stale after promotion |")
    print("|---|---|---|---|---|---|---|---|---|")
    for phase in results["phases"]:
        print(f"| {phase['cache_mb']:g} MB | {phase['requests']} | {phase['errors']} | {phase['warm_p50_ms']} / "
              f"{phase['warm_p95_ms']} ms | {phase['cold_p50_ms']} / {phase['cold_p95_ms']} ms | "
              f"{phase['client_side_hit_rate']} | {phase['partitions_hit']} ({phase['model_mb_hit']} MB) | "
              f"{phase['rss_start_mb']} / {phase['rss_peak_mb']} MB | "
              f"{phase['promotion']['stale_answers']} of {phase['promotion']['answers_after']} |")


if __name__ == "__main__":
    main()
