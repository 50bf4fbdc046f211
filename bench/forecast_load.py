"""Real-time forecast load: POST /api/forecast on devhost + Azurite over the M3 monthly models.

    python bench/forecast_load.py [--requests 3000] [--caches-mb 0.5,64] [--model-set fast] [--batch 100]
    python bench/forecast_load.py --quick          (smoke: 20 series, 60 requests, one cache; forecast_load.quick.json)

The 1,428 M3 monthly series are uploaded to tables/ and trained, registered and gated by the app's
own pipeline (local backend; `--model-set`, default fast, so the setup takes a minute). Serving is
the Azure configuration: the app reads the dataset's production map and the model bundles from the
work container's `models/` (Azurite here), with no local registry index. Then, for each cache size,
a fresh devhost (its own worker process, so a cold cache) serves a bounded load from 4 client
threads on loopback: partition keys drawn Zipf-like (s = 1.1) over all partitions, horizon 12. A
request is "cold" when it is the first for its partition in that phase (a cache miss: a ranged
blob read + unpickle), else "warm". Halfway, the 20 most requested partitions are promoted to a new
version (the production map rewritten, as a re-training run's publish does): every answer that
starts a refresh interval (forecast_map_refresh_seconds) after it must carry the new version.
Last, batches of `--batch` partitions per request (drawn the same way) from one client: "warm"
when every partition in it was asked for before. devhost's RSS is sampled meanwhile, and the
pickled bytes of every model a phase asked for are summed (what an unbounded cache would hold).
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
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from e2e_support import ENDED, app_env, running_stack, wait_for  # noqa: E402
from load import rss_mb  # noqa: E402

from bench.report import BenchReport, quick_path  # noqa: E402
from devhost.process import DevhostProcess  # noqa: E402
from forecast_job.azureml import MODELS_FOLDER  # noqa: E402
from forecast_job.production_map import ProductionMap, map_path  # noqa: E402
from forecast_job.registry import split_range  # noqa: E402
from restyle.settings import get_settings  # noqa: E402
from tools.azurite import free_port  # noqa: E402
from tools.competition_series import monthly  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "forecast_load.json"
DATASET = "m3-monthly"
HORIZON = 12
CLIENTS = 4
PROMOTED = 20


def p(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def train_models(stack, series: int | None, model_set: str) -> float:
    """Upload the M3 monthly table and let the pipeline train it; returns the seconds it took."""
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
    return time.perf_counter() - started


class Models:
    """The dataset's production map in the work container (what the app serves from)."""

    def __init__(self, stack) -> None:
        self.blob = stack.container("work").get_blob_client(f"{MODELS_FOLDER}/{map_path(DATASET)}")

    def current(self) -> ProductionMap:
        return ProductionMap.from_json(self.blob.download_blob().readall())

    def size(self, pid: str, current: ProductionMap) -> int:
        """Bytes of the partition's production model: its range in the run's bundle."""
        span = split_range(current.partitions[pid].artifact)[1]
        return span[1] if span else 0

    def promote(self, pids: list[str]) -> dict[str, int]:
        """New production versions for these partitions (the same fitted model under a new number),
        written to the map as a re-training run's publish writes it; partition id -> version."""
        current = self.current()
        fresh = {pid: replace(current.partitions[pid], version=current.next_version(pid), run_id="bench-promotion")
                 for pid in pids}
        self.blob.upload_blob(current.updated("bench-promotion", fresh.values(), fresh).to_json().encode(),
                              overwrite=True)
        return {pid: version.version for pid, version in fresh.items()}


def zipf_draws(count: int, size: int, seed: int) -> np.ndarray:
    """`size` partition indexes drawn Zipf-like; which partitions are popular is random, not the first rows."""
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, count + 1) ** 1.1
    return rng.permutation(count)[rng.choice(count, size=size, p=weights / weights.sum())]


class RssSampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.values, self.stop = pid, [rss_mb(pid)], threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            self.values.append(rss_mb(self.pid))

    def summary(self) -> dict:
        self.stop.set()
        return {"rss_start_mb": round(self.values[0], 1), "rss_peak_mb": round(max(self.values), 1),
                "rss_end_mb": round(self.values[-1], 1)}


def load_phase(host: DevhostProcess, partitions: list[tuple[str, dict]], requests: int, models: Models,
               refresh_s: float, seed: int) -> dict:
    draws = zipf_draws(len(partitions), requests, seed)
    popular = [partitions[i][0] for i, _ in Counter(draws.tolist()).most_common(PROMOTED)]
    seen: set[int] = set()
    lock = threading.Lock()
    samples: list[tuple[float, float, bool, int, str, str, int]] = []  # start, seconds, cold, status, pid, name, v
    cursor = iter(enumerate(draws.tolist()))
    promoted: dict = {}
    rss = RssSampler(host.process.pid)

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
                    promoted["versions"] = models.promote(popular)
                    promoted["at"] = time.perf_counter()
            started = time.perf_counter()
            status, answer = host.request("POST", "/api/forecast",
                                          {"dataset": DATASET, "keys": partitions[index][1], "horizon": HORIZON})
            seconds = time.perf_counter() - started
            model = answer["forecasts"][0]["model"] if status == 200 else {"name": "", "version": 0}
            with lock:
                samples.append((started, seconds, cold, status, partitions[index][0], model["name"],
                                model["version"]))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    versions = promoted.get("versions", {})
    after = [s for s in samples if s[4] in versions and s[0] > promoted.get("at", float("inf")) + refresh_s]
    stale = [s for s in after if s[6] != versions[s[4]]]
    current = models.current()
    model_bytes = sum(models.size(partitions[index][0], current) for index in seen)
    warm = [s[1] * 1000 for s in samples if not s[2] and s[3] == 200]
    cold = [s[1] * 1000 for s in samples if s[2] and s[3] == 200]
    return {"requests": len(samples), "errors": sum(1 for s in samples if s[3] != 200), "wall_s": round(wall, 1),
            "requests_per_s": round(len(samples) / wall, 1), "partitions_hit": len(seen),
            "model_mb_hit": round(model_bytes / 1024**2, 2),
            "warm": len(warm), "warm_p50_ms": p(warm, 50), "warm_p95_ms": p(warm, 95),
            "cold": len(cold), "cold_p50_ms": p(cold, 50), "cold_p95_ms": p(cold, 95),
            "client_side_hit_rate": round(len(warm) / max(len(samples), 1), 3), **rss.summary(),
            "promotion": {"promoted": len(versions), "answers_after": len(after), "stale_answers": len(stale)}}


def batch_phase(host: DevhostProcess, partitions: list[tuple[str, dict]], batches: int, size: int,
                seed: int) -> dict:
    """`batches` requests of `size` partitions each, one client; warm = all asked for before."""
    size = min(size, len(partitions))
    draws = zipf_draws(len(partitions), batches * size * 4, seed).tolist()
    seen: set[int] = set()
    warm, cold, errors = [], [], 0
    rss = RssSampler(host.process.pid)
    for number in range(batches):
        chosen = list(dict.fromkeys(draws[number * size * 4:(number + 1) * size * 4]))[:size]
        chosen += [i for i in range(len(partitions)) if i not in chosen][:size - len(chosen)]
        started = time.perf_counter()
        status, answer = host.request("POST", "/api/forecast", {
            "dataset": DATASET, "partitions": [partitions[i][1] for i in chosen], "horizon": HORIZON})
        seconds = (time.perf_counter() - started) * 1000
        if status != 200 or len(answer["forecasts"]) != size:
            errors += 1
        elif all(i in seen for i in chosen):
            warm.append(seconds)
        else:
            cold.append(seconds)
        seen.update(chosen)
    return {"batch_size": size, "requests": batches, "errors": errors, "partitions_hit": len(seen),
            "warm": len(warm), "warm_p50_ms": p(warm, 50), "warm_p95_ms": p(warm, 95),
            "cold": len(cold), "cold_p50_ms": p(cold, 50), "cold_p95_ms": p(cold, 95), **rss.summary()}


def run(results: BenchReport, requests: int, caches_mb: list[float], series: int | None, model_set: str,
        batch: int, batches: int) -> None:
    results.update({"dataset": f"M3 monthly ({series or 1428} series), model set {model_set}",
                    "clients": CLIENTS, "horizon": HORIZON, "zipf_s": 1.1, "serving": "production map and "
                    "bundles in the work container (Azurite), no local index", "phases": []})
    with tempfile.TemporaryDirectory(prefix="forecast-load-") as folder, \
            running_stack(Path(folder), poll_initial_seconds="1", poll_max_seconds="2",
                          local_forecast_workers="2") as stack:
        with results.part("train"):
            seconds = train_models(stack, series, model_set)
            models = Models(stack)
            partitions = [(pid, version.keys) for pid, version in sorted(models.current().partitions.items())]
            results["setup"] = {"partitions": len(partitions), "train_register_gate_forecast_s": round(seconds, 1)}
        stack.host.stop()  # the training host; each phase gets a fresh worker with its cache size
        refresh_s = get_settings().forecast_map_refresh_seconds
        for index, cache_mb in enumerate(caches_mb):
            env = app_env(stack.containers, stack.scratch, forecast_cache_bytes=str(int(cache_mb * 1024**2)))
            host = DevhostProcess(free_port(), stack.scratch / "state", stack.azurite.connection,
                                  stack.scratch / f"serve-{index}.log", env=env).start()
            try:
                with results.part(f"cache {cache_mb:g} MB"):
                    host.request("POST", "/api/forecast", {"dataset": DATASET, "keys": partitions[0][1],
                                                           "horizon": 1})
                    results["phases"].append({"cache_mb": cache_mb, **load_phase(host, partitions, requests, models,
                                                                                 refresh_s, seed=index)})
                if index == len(caches_mb) - 1:
                    with results.part(f"batches of {batch}"):
                        results["batches"] = {"cache_mb": cache_mb, **batch_phase(host, partitions, batches, batch,
                                                                                  seed=99)}
            finally:
                host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--caches-mb", default="0.5,64", help="cache sizes to compare, MB, comma-separated")
    parser.add_argument("--model-set", default="fast", choices=["fast", "default", "full"])
    parser.add_argument("--batch", type=int, default=100, help="partitions per request in the batch phase")
    parser.add_argument("--batches", type=int, default=200, help="requests in the batch phase")
    parser.add_argument("--quick", action="store_true", help="smoke: 20 series, 60 requests, one cache size")
    parser.add_argument("--output", type=Path, default=None, help=f"default {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()
    series, requests, batches = (20, 60, 10) if args.quick else (None, args.requests, args.batches)
    caches = "64" if args.quick else args.caches_mb
    results = BenchReport(quick_path(RESULTS, args.quick, args.output), "forecast_load", quick=args.quick)
    run(results, requests, [float(x) for x in caches.split(",")], series, args.model_set, args.batch, batches)
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
    batches = results["batches"]
    print(f"\nbatches of {batches['batch_size']}: {batches['requests']} requests, {batches['errors']} errors, warm "
          f"p50 / p95 {batches['warm_p50_ms']} / {batches['warm_p95_ms']} ms ({batches['warm']}), cold "
          f"{batches['cold_p50_ms']} / {batches['cold_p95_ms']} ms ({batches['cold']})")


if __name__ == "__main__":
    main()
