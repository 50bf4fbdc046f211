"""The many-models reference architecture's workload shape, generated: store x product daily sales.

`write_tables(folder, series, days)` writes the same table as one Parquet file and one CSV file, a
block of series at a time (memory holds a block, never the table). Each series: a level drawn per
store and product, a slow trend, a weekly and a yearly season, Poisson-like noise; one series in
ten is intermittent (most days zero, occasional sales), as slow movers are in a real assortment.
The reference sizes its run at 10,000 such combinations and 40 million rows (4,000 days each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

BLOCK = 250  # series generated and written at once: 1 M rows at 4,000 days
INTERMITTENT_SHARE = 0.1


@dataclass(frozen=True)
class Tables:
    parquet: Path
    csv: Path
    series: int
    days: int
    stores: int

    @property
    def rows(self) -> int:
        return self.series * self.days


def block(first: int, count: int, days: int, stores: int, seed: int = 7) -> pd.DataFrame:
    """Series first .. first+count-1, long format: store, product, timestamp, sales."""
    rng = np.random.default_rng([seed, first])
    t = np.arange(days)
    dates = pd.date_range("2013-01-01", periods=days, freq="D").strftime("%Y-%m-%d").to_numpy()
    frames = []
    for number in range(first, first + count):
        level = rng.uniform(5, 200)
        weekly = 1 + 0.25 * np.sin(2 * np.pi * (t + rng.integers(7)) / 7)
        yearly = 1 + 0.3 * np.sin(2 * np.pi * (t + rng.integers(365)) / 365.25)
        trend = 1 + rng.uniform(-0.3, 0.5) * t / days
        mean = level * weekly * yearly * trend
        if rng.random() < INTERMITTENT_SHARE:
            sales = rng.poisson(0.15, days) * rng.integers(1, 6, days)  # most days nothing
        else:
            sales = rng.poisson(mean)
        frames.append(pd.DataFrame({"store": f"store{number % stores:04d}", "product": f"item{number // stores:05d}",
                                    "timestamp": dates, "sales": sales.astype(np.float64)}))
    return pd.concat(frames, ignore_index=True)


def write_tables(folder: Path, series: int, days: int, stores: int | None = None, csv: bool = True) -> Tables:
    """The table as Parquet (and CSV), written block by block."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    stores = stores or max(1, round(series**0.5))
    parquet_path, csv_path = folder / "sales.parquet", folder / "sales.csv"
    writer = None
    with open(csv_path, "w", encoding="utf-8") if csv else open("/dev/null", "w") as text:
        for first in range(0, series, BLOCK):
            frame = block(first, min(BLOCK, series - first), days, stores)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(parquet_path, table.schema, compression="zstd")
            writer.write_table(table)
            if csv:
                frame.to_csv(text, index=False, header=first == 0)
    writer.close()
    return Tables(parquet_path, csv_path, series, days, stores)
