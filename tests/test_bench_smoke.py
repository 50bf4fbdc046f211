"""Every benchmark in bench/ runs: its smoke mode (tiny sizes) writes its JSON with the keys that the
README's and docs' tables read, and the CPU and load average beside them.

A refactor that breaks a benchmark (bench/load.py once died after three and a half minutes of
measuring, on a helper it no longer had) fails here, not in the next person's long run. The
benchmarks run two at a time (they mostly wait on devhost, Azurite and ffmpeg); their figures are
not asserted, only that they are there: a smoke run's numbers are not the record. The GPU check's
dry run has its own test (tests/test_gpu_check.py), the bad-input table renders from
tests/test_bad_inputs.py's own run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMOKE_TIMEOUT = 240  # seconds a smoke run may take here even on a loaded machine (most take 5-30)

# the smoke runs that take longest here (30-50 s of CPU each, measured): started first
SLOWEST = ("latency", "output_size", "short_history", "temporal", "many_models_scale")
COMMON = ("benchmark", "cpu.model", "cpu.flags", "cpu.cpus", "load_average.start", "load_average.end")
# benchmark -> (arguments, keys its tables read; "a[].b" is key b of every item of list a)
BENCHES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "scoring": (["bench/scoring.py"], (
        "runs[].model_fps", "runs[].pipeline_fps", "runs[].efficiency", "runs[].peer_fps", "runs[].peer_speedup",
        "runs[].png_flow_fps", "runs[].png_flow_speedup", "runs[].openvino_f32_fps", "runs[].openvino_default_fps",
        "runs[].openvino_f32_speedup", "runs[].openvino_default_speedup", "runs[].achieved_gflops",
        "runs[].flop_efficiency", "peer_speedup", "openvino_f32_speedup", "fast_peer_speedup",
        "fast_openvino_speedup", "fast_psnr_db", "fast_precision", "flop_efficiency", "peak_gflops",
        "peak_gflops_bf16", "machines[].cpu.model", "machines[].runs")),
    "cpu_changes": (["bench/cpu_changes.py"], (
        "wall_s_per_frame.after", "cpu_s_per_frame.after", "page_faults_per_frame.after", "after_speedup_wall",
        "after_speedup_cpu", "int8_speedup_wall", "fp32_max_abs_diff", "int8_psnr_db")),
    "latency": (["bench/latency.py"], (
        "latency_one_frame_s", "latency_one_frame_cold_s", "one_frame_runs[].trigger_s",
        "one_frame_runs[].prepare_s", "one_frame_runs[].compute_s", "one_frame_runs[].finish_s",
        "service_model_efficiency", "service_fps", "model_alone_fps", "service_runs")),
    "media": (["bench/media.py"], (
        "runs[].segments", "runs[].split_seconds", "runs[].max_split_seconds", "runs[].stitch_seconds",
        "runs[].bytes_down_ratio", "runs[].bytes_up_ratio", "runs[].peak_scratch_mb", "runs[].rss_mb",
        "runs[].parallel_realtime_fraction", "bytes_down_ratio", "bytes_up_ratio", "peak_scratch_mb")),
    "temporal": (["-m", "bench.temporal"], (
        "clips[].source_ewarp", "clips[].per_frame_ewarp", "clips[].stabilised_ewarp", "clips[].ewarp_reduction",
        "clips[].sharpness_ratio", "clips[].psnr_vs_per_frame", "clips[].boundary_ratio",
        "clips[].per_frame_boundary_ratio", "clips[].cut_pairs_skipped", "clips[].sweep",
        "overhead_s_per_frame_720p")),
    "load": (["bench/load.py"], (
        "sizes[].clips", "sizes[].completed", "sizes[].failed", "sizes[].exact_outputs", "sizes[].wall_s",
        "sizes[].p50_ms", "sizes[].p95_ms", "sizes[].max_ms", "sizes[].failed_requests", "sizes[].peak_processes",
        "sizes[].peak_rss_mb", "sizes[].peak_tree_rss_mb", "sizes[].peak_activities", "sizes[].peak_scoring_jobs",
        "sizes[].lowest_mem_available_mb")),
    "load_slow_storage": (["bench/load.py", "--slow-storage"], (
        "runs[].blocking_calls", "runs[].idle_get_p95_ms", "runs[].get_p50_ms", "runs[].get_p95_ms",
        "runs[].get_max_ms", "runs[].gets", "runs[].writes", "delay_s")),
    "faults": (["bench/faults.py"], ("tried", "survived", "hit", "cases[].fault", "cases[].point", "cases[].survived",
                                    "cases[].checks", "cases[].hit", "cases[].seconds", "cases[].output")),
    "forecast_load": (["bench/forecast_load.py"], (
        "setup.partitions", "phases[].cache_mb", "phases[].errors", "phases[].warm_p50_ms", "phases[].warm_p95_ms",
        "phases[].cold_p50_ms", "phases[].cold_p95_ms", "phases[].partitions_hit", "phases[].rss_peak_mb",
        "phases[].promotion.stale_answers", "batches.batch_size", "batches.errors", "batches.warm_p95_ms")),
    "many_models": (["bench/many_models.py"], (
        "summary.smape_m3_monthly", "summary.smape_m3_monthly_served_after_gate",
        "summary.smape_m3_monthly_seasonal_naive", "summary.models_per_minute", "summary.gate_pass_rate",
        "summary.registry_seconds_per_model", "summary.mlflow_seconds_per_model", "cases[].served.smape")),
    "many_models_scale": (["bench/many_models_scale.py"], (
        "series", "rows", "tables.parquet_mb", "tables.csv_mb", "cases[].end_to_end_s",
        "cases[].stages.validate.seconds", "cases[].stages.validate.app_peak_rss_mb", "cases[].app_peak_rss_mb",
        "cases[].app_peak_temp_disk_mb",
        "cases[].blobs_at_end", "cases[].requests", "reference_models_per_minute_per_core")),
    "forecast_intervals": (["bench/forecast_intervals.py"], (
        "series", "requests", "with_intervals_ms.p50", "with_intervals_ms.p95", "before_intervals_ms.p95",
        "added_p95_ms")),
    "output_size": (["bench/output_size.py"], (
        "sources[].source_kbps", "sources[].source_kbps_at_output_size", "sources[].runs.crf18.kbps",
        "sources[].runs.crf18.vmaf", "sources[].runs.crf18.boundary_ratio", "sources[].runs.quality_default.kbps",
        "sources[].runs.quality_default.vmaf", "sources[].runs.quality_default.boundary_ratio",
        "sources[].runs.quality_default.quality_choice.crf", "sources[].bitrate_vs_source.quality_default",
        "sources[].encode_s_per_frame.per_segment", "sources[].runs.per_segment.boundary_ratio",
        "sources[].seam_excess.quality_default", "sources[].seam_excess.per_segment",
        "sources[].encode_time_ratio", "targets")),
    "gate_rules": (["bench/gate_rules.py"], (
        "datasets.m3.rows[].served_smape", "datasets.m3.rows[].seasonal_naive_served",
        "datasets.tourism.rows[].windows")),
    "short_history": (["bench/short_history.py"], (
        "series", "calibration_partitions", "lengths.1", "lengths.12", "lengths.36")),
}


def missing_keys(document: object, path: str) -> list[str]:
    """The dotted `path` in `document`; where a part ends in [], in every item of that list (at least one)."""
    head, _, rest = path.partition(".")
    listed = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(document, dict) or key not in document:
        return [path]
    value = document[key]
    if listed:
        if not isinstance(value, list) or not value:
            return [f"{path} (no items)"]
        return [f"{key}[{index}].{problem}" for index, item in enumerate(value)
                for problem in (missing_keys(item, rest) if rest else [])]
    return missing_keys(value, rest) if rest else []


def run_smoke(name: str, folder: Path) -> tuple[subprocess.CompletedProcess, Path]:
    arguments, _ = BENCHES[name]
    output = folder / f"{name}.json"
    done = subprocess.run([sys.executable, *arguments, "--quick", "--output", str(output)], cwd=ROOT,
                          capture_output=True, text=True, timeout=SMOKE_TIMEOUT,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return done, output


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    folder = tmp_path_factory.mktemp("bench-smoke")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_smoke, name, folder)
                   for name in sorted(BENCHES, key=lambda name: name not in SLOWEST)}  # longest first: shortest tail
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(BENCHES))
def test_the_benchmark_runs_and_writes_what_its_tables_read(name, smoke_runs):
    done, output = smoke_runs[name]
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    report = json.loads(output.read_text())
    assert report["benchmark"] == name and "failures" not in report, report.get("failures")
    assert [problem for key in COMMON + BENCHES[name][1] for problem in missing_keys(report, key)] == []
    assert report["cpu"]["model"] and isinstance(report["cpu"]["flags"], list)


def test_every_benchmark_script_has_a_smoke_run_here():
    """A new bench script is either in BENCHES, run by another test, or a library the scripts import."""
    scripts = {path.stem for path in (ROOT / "bench").glob("*.py")}
    libraries = {"report", "peak", "openvino_peer", "temporal_metric", "gpu_parts", "scale_data"}
    elsewhere = {"gpu": "tests/test_gpu_check.py", "bad_inputs": "tests/test_bad_inputs.py"}
    run_here = {arguments[-1].removeprefix("bench.").removeprefix("bench/").removesuffix(".py")
                for arguments, _ in (BENCHES[name] for name in BENCHES) if "--slow-storage" not in arguments}
    assert scripts - libraries - set(elsewhere) - run_here == set()


def test_a_benchmark_that_fails_part_way_keeps_what_it_measured(tmp_path):
    """bench.report: the part that failed is recorded with its error, the parts before it stay."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, '.')\n"
        "from bench.report import BenchReport\n"
        f"report = BenchReport(Path({str(tmp_path / 'r.json')!r}), 'demo', runs=[])\n"
        "with report.part('first'):\n    report['runs'].append({'fps': 1.5})\n"
        "with report.part('second'):\n    raise RuntimeError('the second part broke')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "the second part broke" in done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["runs"] == [{"fps": 1.5}]
    assert [(f["part"], f["error"]) for f in report["failures"]] == [("second", "RuntimeError: the second part broke")]
    assert report["cpu"]["model"] and len(report["load_average"]["end"]) == 3
