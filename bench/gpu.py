"""GPU check: model fps and pipeline efficiency on a CUDA machine, in one bounded run, one JSON.

    bash bench/gpu.sh                 # on the GPU machine: under 8 minutes, writes bench/results/gpu.json
    bash bench/gpu.sh --dry-run       # anywhere: the same code on the CPU, tiny sizes, well under a minute
    bash bench/gpu.sh --out PATH      # the JSON elsewhere (--budget SECONDS: the measuring time, default 420)

(bench/gpu.sh picks the Python that has torch and installs what the machine lacks; this module is
what it runs.) Measured side by side in one run, with the load average beside the timings:
  model     Stylizer fps on frames in host memory, uint8 in and out as the pipeline calls it, for
            bf16 and fp16 and batch 1/4/8/16 at 1280x720 and 1920x1080;
  pipeline  stylize_segment fps on a 20 s clip (the bundled bigbuckbunny looped and scaled) over the
            model-alone fps at the same settings (the engine's CUDA default: bf16, batch 8) =
            efficiency, at 720p and 1080p, for CPU decode + x264, NVDEC + x264, CPU decode + NVENC
            and NVDEC + NVENC (the bundled imageio-ffmpeg binary has h264_nvenc and the cuda hwaccel);
  compiled  torch.compile at the default precision and batch: compile seconds, fps, speedup.
Each part runs in its own process under its own time limit inside the total budget. What the
machine cannot do (no CUDA device, no NVENC: an H100/H200 has none, a missing package) is recorded
as `skipped` with the reason, and the JSON is rewritten after every part, so even a run cut short
leaves what it measured. The dry run (`--dry-run`) is the same code at 128x72 and 192x108 on the CPU
in fp32/bf16 with an 8-frame clip; tests/test_gpu_check.py runs it so that this check cannot rot.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from gpu_parts import MODES  # bench/ is this script's folder, so first on sys.path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gpu.json"
DRY_RESULTS = HERE / "results" / "gpu-dry-run.json"
PARTS_SCRIPT = HERE / "gpu_parts.py"


@dataclass(frozen=True)
class Plan:
    dry_run: bool
    device: str
    sizes: tuple[tuple[int, int], ...]
    precisions: tuple[str, ...]
    batches: tuple[int, ...]
    seconds_per_point: float  # timed work behind each model figure
    clip_frames: int  # length of the pipeline's clip
    budget_s: float  # all parts together
    limits_s: dict[str, float]  # each part at most
    min_start_s: float  # a part is not started with less left than this
    compile: bool


def gpu_plan(budget_s: float) -> Plan:
    return Plan(False, "cuda", ((1280, 720), (1920, 1080)), ("bf16", "fp16"), (1, 4, 8, 16), 2.0, 500, budget_s,
                {"environment": 90, "model": 150, "pipeline": 130, "compiled": 150}, 20, True)


def dry_plan(budget_s: float) -> Plan:
    return Plan(True, "cpu", ((128, 72), (192, 108)), ("fp32", "bf16"), (1, 2), 0.1, 8, budget_s,
                {"environment": 30, "model": 40, "pipeline": 40, "compiled": 0}, 3, False)


def parts(plan: Plan) -> list[tuple[str, str, dict, list[dict]]]:
    """(label, part, extra context, the records it must produce) in running order."""
    sizes = [f"{w}x{h}" for w, h in plan.sizes]
    model = [{"precision": p, "size": s, "batch": b} for s in sizes for p in plan.precisions for b in plan.batches]
    listed = [("environment", "environment", {}, []), ("model", "model", {}, model)]
    for (width, height), size in zip(plan.sizes, sizes, strict=True):
        records = [{"size": size, "decode": decode, "encode": encode} for decode, encode in MODES]
        listed.append((f"pipeline {size}", "pipeline", {"size": [width, height]}, records))
    listed.append(("compiled", "compiled", {}, [{"size": sizes[0]}]))
    return listed


def run_part(name: str, context: dict, work: Path, timeout: float) -> tuple[str, dict]:
    """Run one part in its own process group; kill the group (ffmpeg children too) at the limit."""
    context_path, result_path, log_path = (work / f"{name}-{os.getpid()}.{ext}" for ext in ("ctx", "json", "log"))
    context_path.write_text(json.dumps(context))
    result_path.unlink(missing_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, str(PARTS_SCRIPT), name, str(context_path), str(result_path)],
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
            status = "ok" if code == 0 else f"failed (exit {code}): {_tail(log_path)}"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            status = f"timed out after {timeout:.0f} s"
    data = json.loads(result_path.read_text()) if result_path.exists() else {"records": []}
    return status, data


def _tail(log: Path) -> str:
    """The log's last line: for a part that raised, the exception and its message."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][-600:] if lines else "no output"


def completed(records: list[dict], expected: list[dict], reason: str) -> list[dict]:
    """The part's records, plus a skip with `reason` for each expected record it did not produce."""
    done = [record for record in records if any(_matches(record, key) for key in expected)]
    missing = [{**key, "skipped": reason} for key in expected if not any(_matches(r, key) for r in done)]
    return done + missing


def _matches(record: dict, key: dict) -> bool:
    return all(record.get(field) == value for field, value in key.items())


def check(plan: Plan, out: Path) -> dict:
    started, deadline = time.monotonic(), time.monotonic() + plan.budget_s
    report: dict = {
        "check": "gpu", "dry_run": plan.dry_run, "started_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["bash bench/gpu.sh", *sys.argv[1:]]), "setup": os.environ.get("GPU_CHECK_SETUP", ""),
        "load_average": {"start": list(os.getloadavg())}, "plan": asdict(plan),
        "environment": {}, "model": [], "pipeline": [], "compiled": [], "parts": {},
    }
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    context: dict = {"plan": asdict(plan), "work": str(work)}
    for label, name, extra, expected in parts(plan):
        left = deadline - time.monotonic()
        part_started = time.monotonic()
        if name == "compiled" and not plan.compile:
            status = "skipped: a dry run does not time torch.compile (tens of seconds on a CPU)"
            data: dict = {"records": []}
        elif left < plan.min_start_s:
            status, data = f"skipped: the total budget of {plan.budget_s:.0f} s was spent", {"records": []}
        else:
            status, data = run_part(name, {**context, **extra}, work, min(plan.limits_s[name], left))
        report["parts"][label] = {"status": status, "seconds": round(time.monotonic() - part_started, 1)}
        if name == "environment":
            report["environment"] = {key: value for key, value in data.items() if key != "records"}
            context["hardware_video"] = data.get("hardware_video", {})
        else:
            key = "pipeline" if name == "pipeline" else name
            reason = status.removeprefix("skipped: ") if status.startswith("skipped: ") else f"{label} {status}"
            report[key] += completed(data["records"], expected, reason)
            if name == "pipeline":
                report["parts"][label].update({k: v for k, v in data.items() if k != "records"})
            elif name == "model":
                report["parts"][label].update({k: v for k, v in data.items() if k.startswith("frames_")})
        report["load_average"]["end"] = list(os.getloadavg())
        report["wall_s"] = round(time.monotonic() - started, 1)
        write(report, out)
        print(f"[{report['wall_s']:6.1f} s] {label}: {status}", flush=True)
    return report


def write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(partial, out)


def summary(report: dict) -> str:
    lines = [f"load average {report['load_average']['start']} -> {report['load_average'].get('end')}"]
    for record in report["model"]:
        figure = record.get("fps", f"skipped ({record.get('skipped')})")
        lines.append(f"model    {record['size']:>9} {record['precision']} batch {record['batch']:>2}: {figure}")
    for record in report["pipeline"]:
        figure = (f"{record['pipeline_fps']} fps, model {record['model_fps']} fps: efficiency {record['efficiency']}"
                  if "efficiency" in record else f"skipped ({record.get('skipped')})")
        lines.append(f"pipeline {record['size']:>9} {record['decode']:>5} + {record['encode']:<10}: {figure}")
    for record in report["compiled"]:
        lines.append(f"compiled {record['size']:>9}: "
                     + (f"{record['fps']} fps ({record['speedup']}x eager, compile {record['compile_s']} s)"
                        if "fps" in record else f"skipped ({record.get('skipped')})"))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU at tiny sizes")
    parser.add_argument("--out", type=Path, help=f"result JSON (default {RESULTS}, or {DRY_RESULTS.name} dry)")
    parser.add_argument("--budget", type=float, help="seconds for all parts together (default 420; dry 90)")
    args = parser.parse_args()
    plan = dry_plan(args.budget or 90) if args.dry_run else gpu_plan(args.budget or 420)
    out = args.out or (DRY_RESULTS if args.dry_run else RESULTS)
    report = check(plan, out)
    print(summary(report))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
