"""What a user (or the blob's metadata) may set for a many-models run, with documented defaults.

Two small objects: `TableOptions` says how to read the table (which columns are the partition keys,
the timestamp and the target, and the frequency); `TrainOptions` says what to train (model set,
horizon, season length, evaluation, the promotion gate). Both are frozen pydantic models so the manifest carries them
verbatim and a job on another machine reads exactly what the Function App decided. No pandas or
statsforecast here: the Function App imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .gate import GateRule
from .levels import DEFAULT_LEVELS, LevelsError, parse_levels

DEFAULT_TIMESTAMP = "timestamp"
DEFAULT_TARGET = "target"
MODEL_SETS = ("fast", "default", "full")


class OptionsError(ValueError):
    """An option given in blob metadata (or on the command line) is not valid; the message names it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableOptions(_Strict):
    """Column names and frequency. Defaults: `timestamp`, `target`, and every other column is a
    partition key; the frequency is inferred from the data (a pandas offset alias such as `MS`)."""

    timestamp_column: str = Field(default=DEFAULT_TIMESTAMP, min_length=1)
    target_column: str = Field(default=DEFAULT_TARGET, min_length=1)
    partition_columns: tuple[str, ...] | None = None  # None: every column but timestamp and target
    freq: str | None = None  # None: inferred from the partitions' spacing (frequency.py)
    min_length: int | None = Field(default=None, gt=0)  # None: the holdout + what the season needs (frequency.py)
    # Periods with no row: "none" rejects the partition (saying so), "zero" means nothing happened (sales:
    # no row, no sale), "missing" means unknown (filled by interpolation, like empty target cells).
    fill_gaps: Literal["none", "zero", "missing"] = "none"
    # How text timestamps are written, as strftime (%d/%m/%Y); else ISO or any one unambiguous format.
    # Day-first / month-first dates (03/04/2021) are refused as ambiguous unless this or `dayfirst` says.
    date_format: str | None = Field(default=None, min_length=2)
    dayfirst: bool | None = None

    @field_validator("partition_columns")
    @classmethod
    def _distinct(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and (not value or len(set(value)) != len(value) or not all(v.strip() for v in value)):
            raise ValueError("partition columns must be distinct, non-empty names (at least one)")
        return value


class TrainOptions(_Strict):
    """What to train per partition. Defaults: the `default` model set, a horizon of one season
    (12 for monthly data; 10 where there is no season), a holdout as long as the horizon, up to two
    evaluation windows (rolling origin; one where a history is too short for two), selection by MASE with
    the combination preferred unless beaten by more than 20%, and 80% and 95% prediction intervals."""

    model_set: Literal["fast", "default", "full"] = "default"
    horizon: int | None = Field(default=None, gt=0)  # None: frequency.default_horizon (one season; 13 weekly)
    season_length: int | None = Field(default=None, gt=0)  # None: from the frequency (12 for monthly)
    windows: int = Field(default=2, gt=0, le=10)  # evaluation origins, each `horizon` apart: at most this many
    # the latest points a long series is evaluated and fitted on (None: all). Theta's optimizer costs
    # grow faster than the length: 4,000 daily points train in ~2.1 s, their last 1,000 in ~0.17 s, at a
    # holdout sMAPE 0.1% worse (docs/many-models.md, "Long histories"); monthly and weekly series are
    # shorter than this and untouched
    fit_window: int | None = Field(default=1000, ge=50)
    selection_metric: Literal["mase", "smape", "wape"] = "mase"
    # a single model replaces the combination only if its holdout error is lower by more than this
    # fraction (models.py: 0.2 measured best on M3 monthly; 0 = plain lowest error; 1 = always combine)
    selection_margin: float = Field(default=0.2, ge=0, le=1)
    # prediction intervals (levels.py): lo_<level> / hi_<level> beside every forecast
    levels: tuple[float, ...] = DEFAULT_LEVELS
    # the promotion gate: the app sets it from its settings (gate_metric, gate_threshold), so training
    # falls back to the best candidate that passes it and publish judges by the same rule
    gate: GateRule = GateRule()

    @field_validator("fit_window", mode="before")
    @classmethod
    def _all_points(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("all", "none") else value

    @field_validator("levels", mode="before")
    @classmethod
    def _levels(cls, value: object) -> tuple[float, ...]:
        return parse_levels(value)


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


# Blob metadata keys (case-insensitive, as Azure Storage returns them lower-cased) -> option fields.
_TABLE_KEYS = {"timestamp_column": "timestamp_column", "target_column": "target_column",
               "partition_columns": "partition_columns", "freq": "freq", "min_length": "min_length",
               "fill_gaps": "fill_gaps", "date_format": "date_format", "dayfirst": "dayfirst"}
_TRAIN_KEYS = {"model_set": "model_set", "horizon": "horizon", "season_length": "season_length",
               "windows": "windows", "fit_window": "fit_window", "selection_metric": "selection_metric",
               "selection_margin": "selection_margin",
               "levels": "levels"}


def options_from_metadata(metadata: Mapping[str, str]) -> tuple[TableOptions, TrainOptions]:
    """Options from an upload's blob metadata (all strings); unknown keys are ignored, bad values
    raise OptionsError naming the key, so the upload can be rejected with that reason."""
    lowered = {key.lower(): value for key, value in metadata.items()}
    table = {field: lowered[key] for key, field in _TABLE_KEYS.items() if key in lowered}
    if "partition_columns" in table:
        table["partition_columns"] = _split(table["partition_columns"])
    train = {field: lowered[key] for key, field in _TRAIN_KEYS.items() if key in lowered}
    try:
        if "levels" in train:
            train["levels"] = parse_levels(train["levels"])
    except LevelsError as error:
        raise OptionsError(f"invalid options in the upload's metadata: {error}") from None
    try:
        return TableOptions(**table), TrainOptions(**train)
    except ValidationError as error:
        raise OptionsError(f"invalid options in the upload's metadata: {validation_problems(error)}") from None


def validation_problems(error: ValidationError) -> str:
    """pydantic's errors as one line a user can act on: `field: problem; ...`."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
