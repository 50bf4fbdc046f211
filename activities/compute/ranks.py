"""The local backend's ranks: what Azure ML's mpirun does, without torchrun in between.

One process per rank, started directly with the rank variables torchrun would set (RANK,
WORLD_SIZE, LOCAL_RANK) and its share of the cores. Why not torchrun: it is one more Python
process that imports torch before any rank starts (seconds on a short job), it puts ranks in
sessions of their own (so killing the job's process group missed them), and it starts ranks
that have nothing to do. Here only as many ranks start as there are unfinished segments, and
all stay in the runner's process group, so cancel and a crash of the runner reach them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scoring_job.manifest import Manifest
from scoring_job.score import complete_segments


def world_size(manifest: Manifest, output_dir: Path, processes: int) -> int:
    """Ranks worth starting: at most `processes`, and no more than the segments still to do."""
    todo = len(manifest.segments) - len(complete_segments(output_dir, manifest.segments))
    return max(1, min(processes, todo))


def threads_per_rank(world: int, cores: int | None = None) -> int:
    """The machine's cores split between the ranks (torchrun would give each rank one thread)."""
    return max(1, (cores or os.cpu_count() or 1) // world)


class RankGroup:
    """`world` scoring processes over one input and output folder; wait() gives the worst exit code."""

    def __init__(self, input_dir: Path, output_dir: Path, world: int, compile_cache: Path) -> None:
        threads = str(threads_per_rank(world))
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-m", "scoring_job.score", "--input", str(input_dir), "--output", str(output_dir),
                 "--compile-cache", str(compile_cache)],
                env={**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                     "OMP_NUM_THREADS": threads},
            )
            for rank in range(world)
        ]

    def wait(self) -> int:
        codes = [process.wait() for process in self.processes]
        return next((code for code in codes if code != 0), 0)
