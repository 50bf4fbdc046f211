"""Many models at the reference architecture's shape, through the app as a user runs it.

    python bench/many_models_scale.py [--series 10000] [--days 4000] [--cases parquet:fast,csv:validate]
    python bench/many_models_scale.py --quick        (smoke: 40 series x 120 days)

bench/scale_data.py writes the table (store x product daily sales, weekly and yearly seasons, one
series in ten intermittent) as one Parquet and one CSV file. Each case starts Azurite and devhost
(tests/e2e_support.running_stack, the local backend, two training processes), uploads the table to
tables/ and follows the job over GET /api/jobs/{id}:

- `parquet:<model set>` / `csv:<model set>`: the whole run, upload to Completed;
- `csv:validate`: validate and prepare only (until training starts), then DELETE /api/jobs/{id}, and
  the sweep of work/<job>/ that DELETE starts is timed to its end.

Per stage (the job's own `stage`: validate, prepare, train, publish): seconds and the Function App's
peak RSS (devhost's process: the host and the app's functions; the compute side runs in its child
processes, whose sum is the tree's RSS). The app's temp disk (the temp root minus the local
backend's own folder, the compute side's disk), blobs at the end per container, and Azurite's
requests by method (its --debug log). Beside each trained case, in the same run: pure training of
the same table (forecast_job.prepare, then forecast_job.train on two processes, no app, no storage)
and the ratio app end to end / pure training. Writes bench/results/many_models_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from e2e_support import ENDED, running_stack, wait_for  # noqa: E402

from bench.load import process_tree, rss_mb  # noqa: E402
from bench.report import BenchReport, quick_path  # noqa: E402
from bench.scale_data import write_tables  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "many_models_scale.json"
WORKERS = 2
METADATA = {"target_column": "sales", "timestamp_column": "timestamp", "partition_columns": "store,product"}
REQUEST = re.compile(r"RequestMethod=(\w+) RequestURL=\S*?/devstoreaccount1/([^/?\s]+)")
REFERENCE_MODELS_PER_MINUTE_PER_CORE = round(10_000 / 30 / 192, 2)  # 10,000 models, 30 min, 192 vCPU


def folder_mb(root: Path, leave_out: Path | None = None) -> float:
    total = 0
    for folder, dirs, files in os.walk(root):
        if leave_out is not None and Path(folder) == leave_out.parent:
            dirs[:] = [d for d in dirs if Path(folder, d) != leave_out]
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total / 2**20


class Follower(threading.Thread):
    """Every half second: the job's stage (first seen at), devhost's RSS and its tree's, the app's temp disk."""

    def __init__(self, host, job_id: str, temp_root: Path) -> None:
        super().__init__(daemon=True)
        self.host, self.job_id, self.temp_root = host, job_id, temp_root
        self.started, self.stop = time.monotonic(), threading.Event()
        self.samples: list[dict] = []
        self.job: dict = {}
        self.stage_at: dict[str, float] = {}

    def run(self) -> None:
        while not self.stop.wait(0.5):
            status, job = self.host.request("GET", f"/api/jobs/{self.job_id}")
            now = round(time.monotonic() - self.started, 2)
            if status == 200:
                self.job = job
                self.stage_at.setdefault(job.get("stage") or "queued", now)
            pid = self.host.process.pid
            self.samples.append({"t": now, "stage": self.job.get("stage"), "app_rss_mb": rss_mb(pid),
                                 "tree_rss_mb": sum(map(rss_mb, process_tree(pid))),
                                 "app_disk_mb": folder_mb(self.temp_root, self.temp_root / "local-jobs")})

    def stages(self, ended_at: float) -> dict:
        order = sorted(self.stage_at.items(), key=lambda item: item[1])
        out = {}
        for (stage, began), following in zip(order, [*order[1:], ("end", ended_at)], strict=True):
            samples = [s for s in self.samples if s["stage"] == stage] or [{"app_rss_mb": 0, "tree_rss_mb": 0}]
            out[stage] = {"seconds": round(following[1] - began, 1),
                          "app_peak_rss_mb": round(max(s["app_rss_mb"] for s in samples), 1),
                          "tree_peak_rss_mb": round(max(s["tree_rss_mb"] for s in samples), 1)}
        return out


def requests_by_method(log: Path) -> dict:
    counts: Counter[str] = Counter()
    with open(log, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if found := REQUEST.search(line):
                counts[found.group(1)] += 1
    return dict(sorted(counts.items()))


def blobs_by_container(stack) -> dict:
    return {kind: sum(1 for _ in stack.container(kind).list_blob_names()) for kind in stack.containers}


def through_app(path: Path, model_set: str, scratch: Path, timeout: float) -> dict:
    """One upload through devhost + Azurite; `model_set` "validate" stops at training and DELETEs the job."""
    log = scratch / "azurite-requests.log"
    with running_stack(scratch, azurite_args=("--debug", str(log)), local_forecast_workers=str(WORKERS),
                       poll_initial_seconds="1", poll_max_seconds="5") as stack:
        metadata = {**METADATA, "model_set": "fast" if model_set == "validate" else model_set}
        began = time.monotonic()
        with open(path, "rb") as data:
            stack.container("tables").get_blob_client(path.name).upload_blob(data, overwrite=True, metadata=metadata,
                                                                            max_concurrency=4)
        uploaded = time.monotonic() - began
        host = stack.host
        job = wait_for(lambda: next((j for j in host.request("GET", "/api/jobs")[1]["jobs"]
                                     if j["blob"] == path.name), None), 120, "the job")
        follower = Follower(host, job["id"], stack.temp_root)
        follower.start()
        done_when = ((lambda: follower.stage_at.get("train")) if model_set == "validate" else
                     (lambda: follower.job.get("status") in ENDED))
        wait_for(done_when, timeout, "the job", interval=1)
        ended = time.monotonic() - follower.started
        result = {"format": path.suffix[1:], "model_set": model_set, "upload_s": round(uploaded, 1)}
        if model_set == "validate":
            status, answer = host.request("DELETE", f"/api/jobs/{job['id']}")
            removal = time.monotonic()
            wait_for(lambda: not list(stack.container("work").list_blob_names(name_starts_with=f"{job['id']}/")),
                     timeout, "the work folder's sweep", interval=1)
            result["delete"] = {"http_status": status, "work_removal": answer.get("work_removal"),
                                "sweep_s": round(time.monotonic() - removal, 1)}
        follower.stop.set()
        follower.join()
        final = follower.job
        samples = follower.samples
        result.update({
            "status": final.get("status"), "end_to_end_s": round(uploaded + ended, 1),
            "stages": follower.stages(ended),
            "app_peak_rss_mb": round(max(s["app_rss_mb"] for s in samples), 1),
            "tree_peak_rss_mb": round(max(s["tree_rss_mb"] for s in samples), 1),
            "app_peak_temp_disk_mb": round(max(s["app_disk_mb"] for s in samples), 1),
            "blobs_at_end": blobs_by_container(stack), "requests": requests_by_method(log)})
        if model_set != "validate":
            output = final.get("output") or {}
            result["trained"] = output.get("trained")
            result["partitions_failed"] = output.get("partitions_failed")
        if model_set != "validate" and result["status"] != "Completed":
            raise SystemExit(f"the job ended {result['status']}: {final.get('error')}")
    return result


def pure_training(path: Path, model_set: str, scratch: Path) -> dict:
    """The same table prepared and trained with forecast_job's own entry points: no app, no storage."""
    options = json.dumps({"table": {"target_column": "sales", "partition_columns": ["store", "product"]},
                          "train": {"model_set": model_set}})
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "forecast_job.prepare", "--table", str(path), "--format", path.suffix[1:],
                    "--work", str(scratch / "work"), "--run-id", "pure", "--dataset", "sales", "--options", options],
                   check=True, cwd=ROOT)
    prepared = time.perf_counter()
    subprocess.run([sys.executable, "-m", "forecast_job.train", "--work", str(scratch / "work"), "--output",
                    str(scratch / "out"), "--workers", str(WORKERS)], check=True, cwd=ROOT)
    trained = time.perf_counter()
    return {"prepare_s": round(prepared - started, 1), "train_s": round(trained - prepared, 1)}


def run_case(case: str, tables, scratch: Path, timeout: float) -> dict:
    kind, model_set = case.split(":")
    path = tables.parquet if kind == "parquet" else tables.csv
    result = {"case": case, "table_mb": round(path.stat().st_size / 2**20, 1),
              **through_app(path, model_set, scratch / f"{case.replace(':', '-')}-app", timeout)}
    if model_set != "validate":
        pure = pure_training(path, model_set, scratch / f"{case.replace(':', '-')}-pure")
        train_s = result["stages"].get("train", {}).get("seconds")
        result.update(pure=pure, app_over_pure_training=round(result["end_to_end_s"] / pure["train_s"], 2),
                      models_per_minute=round(tables.series / pure["train_s"] * 60, 1),
                      models_per_minute_per_core=round(tables.series / pure["train_s"] * 60 / WORKERS, 2),
                      app_models_per_minute=round(tables.series / train_s * 60, 1) if train_s else None)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=4_000)
    parser.add_argument("--cases", default="parquet:fast,csv:validate",
                        help="comma-separated FORMAT:SET, FORMAT parquet or csv, SET fast, default, full or validate")
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    parser.add_argument("--quick", action="store_true", help="smoke: 40 series x 120 days")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.series, args.days = 40, 120
    cases = [case.strip() for case in args.cases.split(",") if case.strip()]
    report = BenchReport(quick_path(RESULTS, args.quick, args.output), "many_models_scale", series=args.series,
                         days=args.days, rows=args.series * args.days, workers=WORKERS,
                         reference_models_per_minute_per_core=REFERENCE_MODELS_PER_MINUTE_PER_CORE, cases=[])
    with tempfile.TemporaryDirectory(prefix="mm-scale-") as folder:
        scratch = Path(folder)
        with report.part("tables"):
            began = time.perf_counter()
            tables = write_tables(scratch / "tables", args.series, args.days)
            report["tables"] = {"seconds": round(time.perf_counter() - began, 1),
                                "parquet_mb": round(tables.parquet.stat().st_size / 2**20, 1),
                                "csv_mb": round(tables.csv.stat().st_size / 2**20, 1)}
        for case in cases:
            with report.part(case):
                report["cases"].append(run_case(case, tables, scratch, args.timeout))
            print(report["cases"][-1], flush=True)
    print_table(report)


def print_table(report: dict) -> None:
    print(f"\n{report['series']} series x {report['days']} days ({report['rows']:,} rows), {report['cpu']['model']}")
    print("| case | end to end s | stages s | app peak RSS MB | app temp disk MB | blobs | requests | "
          "pure training s | app / pure |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in report["cases"]:
        stages = ", ".join(f"{name} {stage['seconds']}" for name, stage in case["stages"].items())
        print(f"| {case['case']} | {case['end_to_end_s']} | {stages} | {case['app_peak_rss_mb']} | "
              f"{case['app_peak_temp_disk_mb']} | {sum(case['blobs_at_end'].values())} | "
              f"{sum(case['requests'].values())} | {case.get('pure', {}).get('train_s', '-')} | "
              f"{case.get('app_over_pure_training', '-')} |")


if __name__ == "__main__":
    main()
