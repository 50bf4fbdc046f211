"""What every benchmark writes: its figures, the machine they came from, and what failed.

A benchmark's JSON names the CPU (model, cores, the flags that change which kernels run) and the
load average at its start and end beside its figures: machines here differ and are shared, so a
figure without them cannot be compared. It is rewritten after every part, and a part that fails is
recorded with its error before the benchmark exits non-zero: a run that breaks half-way still
leaves what it measured, never nothing.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scoring_job.machine import cpu_record  # noqa: E402


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


class BenchReport(dict):
    """The benchmark's result document, written to `path` on every `write()`."""

    def __init__(self, path: Path | None, benchmark: str, **fields: object) -> None:
        super().__init__(benchmark=benchmark, cpu=cpu_record(), load_average={"start": load_average()}, **fields)
        self.path = path
        self.write()

    def write(self) -> None:
        self["load_average"]["end"] = load_average()
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(self, indent=1, default=str) + "\n")
        os.replace(partial, self.path)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Run one part; a failure is recorded under `failures` (and written) before it propagates."""
        try:
            yield
        except BaseException as error:
            self.setdefault("failures", []).append({
                "part": name, "error": f"{type(error).__name__}: {error}",
                "where": traceback.format_exc(limit=-3).strip().splitlines()[-6:]})
            raise
        finally:
            self.write()


def quick_path(results: Path, quick: bool, output: Path | None) -> Path:
    """Where a run writes: `--output` if given; a smoke run beside the record as NAME.quick.json
    (git-ignored), never over the recorded figures."""
    if output is not None:
        return output
    return results.with_name(results.stem + ".quick.json") if quick else results
