"""Azure ML parallel job entry script (RunFunction.entry_script): Azure ML loads this file by path,
so it puts the code root on sys.path and re-exports train.init / train.run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecast_job.train import init, run

__all__ = ["init", "run"]
