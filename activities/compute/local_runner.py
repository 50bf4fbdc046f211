"""The local backend's detached job: what Azure ML's mounts and mpirun do, on this machine.

    python -m activities.compute.local_runner --job-id ID --kind stylize|many_models --state-dir DIR --processes N

Runs the job of its kind (stylize: local_scoring.py; many_models: local_training.py), then writes
the exit code to DIR/exit_code and tells the orchestration that the job has ended.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path

from scoring_job.files import write_text_atomic

from .backend import COMPUTE_CHANGED, JobKind
from .local_scoring import run_scoring
from .local_training import run_training


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--kind", choices=[kind.value for kind in JobKind], default=JobKind.STYLIZE.value)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--events-url", help="the orchestration's sendEventPostUri: told when the job has ended")
    args = parser.parse_args()
    try:
        run = run_training if args.kind == JobKind.MANY_MODELS else run_scoring
        code = run(args.job_id, args.state_dir, args.processes)
    except Exception as error:
        write_text_atomic(args.state_dir / "exit_code", json.dumps({"code": 1, "error": str(error)}))
        report_end(args.events_url, 1)
        raise
    write_text_atomic(args.state_dir / "exit_code", json.dumps({"code": code}))
    report_end(args.events_url, code)
    return code


def report_end(events_url: str | None, code: int) -> None:
    """Raise COMPUTE_CHANGED on the orchestration (after exit_code exists, which its next status
    poll reads). Best effort: if the host cannot be reached, the poll finds the end anyway."""
    if not events_url:
        return
    url = events_url.replace("{eventName}", COMPUTE_CHANGED)
    request = urllib.request.Request(url, data=json.dumps({"exit_code": code}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except (OSError, ValueError) as error:
        print(f"could not report the job's end to the orchestration ({error}); its poll will find it",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
