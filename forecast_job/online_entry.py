"""Azure ML online endpoint scoring script (CodeConfiguration.scoring_script): the inference server
loads this file by path, so it puts the code root on sys.path and re-exports online.init / online.run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecast_job.online import init, run

__all__ = ["init", "run"]
