"""The GPU check's dry run (bench/gpu.sh --dry-run): the same code on the CPU, so that it cannot rot.

Every planned figure must come back as a positive number or as a skip that names its reason; on
this CPU-only machine the CPU paths must be numbers and the NVDEC/NVENC paths skips saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
POSITIVE = {"model": ("fps", "frames", "seconds"), "pipeline": ("pipeline_fps", "model_fps", "efficiency", "frames")}


def dry_run(out: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "GPU_PYTHON": sys.executable}
    done = subprocess.run(["bash", "bench/gpu.sh", "--dry-run", "--out", str(out), *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done, json.loads(out.read_text())


def figures_or_named_skips(report: dict) -> None:
    for section, fields in POSITIVE.items():
        for record in report[section]:
            if "skipped" in record:
                assert isinstance(record["skipped"], str) and len(record["skipped"]) > 5, record
            else:
                assert all(record[field] > 0 for field in fields), record


@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run's expectations are for a CPU-only machine")
def test_dry_run_measures_every_cpu_path_and_names_each_skip(tmp_path):
    done, report = dry_run(tmp_path / "gpu.json")
    assert report["check"] == "gpu" and report["dry_run"] is True
    assert len(report["load_average"]["start"]) == 3 and len(report["load_average"]["end"]) == 3
    assert 0 < report["wall_s"] < report["plan"]["budget_s"]
    plan = report["plan"]
    sizes = [f"{w}x{h}" for w, h in plan["sizes"]]

    planned = {(p, s, b) for s in sizes for p in plan["precisions"] for b in plan["batches"]}
    assert {(r["precision"], r["size"], r["batch"]) for r in report["model"]} == planned
    assert len(report["model"]) == len(planned)
    assert all(record["fps"] > 0 and "skipped" not in record for record in report["model"])

    modes = {(s, d, e) for s in sizes for d, e in
             (("cpu", "libx264"), ("nvdec", "libx264"), ("cpu", "h264_nvenc"), ("nvdec", "h264_nvenc"))}
    assert {(r["size"], r["decode"], r["encode"]) for r in report["pipeline"]} == modes
    for record in report["pipeline"]:
        if record["decode"] == "cpu" and record["encode"] == "libx264":
            assert record["frames"] == plan["clip_frames"] and record["device"] == "cpu:fp32"
            assert record["efficiency"] == pytest.approx(record["pipeline_fps"] / record["model_fps"], abs=0.002)
        else:  # the preflight ran the real ffmpeg: it names what is missing (no CUDA driver here)
            assert record["skipped"].startswith(("nvdec unavailable: ", "nvenc unavailable: ")), record
            assert "cuda" in record["skipped"].lower()
    figures_or_named_skips(report)

    environment = report["environment"]
    assert environment["facts"]["torch"] == torch.__version__ and environment["facts"]["cuda_available"] is False
    assert environment["ffmpeg"]["lists_h264_nvenc"] and environment["ffmpeg"]["lists_cuda_hwaccel"]
    assert {name: facts["available"] for name, facts in environment["hardware_video"].items()} == {
        "nvdec": False, "nvenc": False}
    assert report["compiled"] == [{"size": sizes[0], "skipped": report["parts"]["compiled"]["status"][9:]}]
    assert [part["status"] for label, part in report["parts"].items() if label != "compiled"] == ["ok"] * 4
    assert "efficiency" in done.stdout and str(tmp_path / "gpu.json") in done.stdout


def test_a_spent_budget_still_writes_every_figure_as_a_named_skip(tmp_path):
    _, report = dry_run(tmp_path / "gpu.json", "--budget", "4")
    figures_or_named_skips(report)
    skipped = [record["skipped"] for record in report["pipeline"]]
    assert len(skipped) == 8 and any("budget of 4 s was spent" in reason for reason in skipped)
    assert report["wall_s"] < 4 + 10  # the first part is cut at the budget; the rest never start
