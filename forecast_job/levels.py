"""Prediction-interval levels: which a user may ask for, and the names of their columns (stdlib only:
the Function App checks levels in upload metadata and in POST /api/forecast with this module).

A level is a percentage: 80 means "the actual lands between lo_80 and hi_80 four times in five".
Allowed: 1 to MAX_LEVELS distinct numbers strictly between 50 and 99.9 (below 50 an interval says
less than the point forecast; at 99.9 and above no holdout of a few hundred partitions can calibrate it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

DEFAULT_LEVELS: tuple[float, ...] = (80.0, 95.0)
LOWEST, HIGHEST = 50.0, 99.9  # exclusive bounds
MAX_LEVELS = 5
EXAMPLE = "80,95"


class LevelsError(ValueError):
    """A `levels` value that cannot be used; the message names the option and the bad entry."""


def _number(entry: object, option: str) -> float:
    def refuse(shown: object) -> LevelsError:
        return LevelsError(f"`{option}`: {shown!r} is not a number; give percentages like {EXAMPLE}")

    shown = entry.strip() if isinstance(entry, str) else entry
    if isinstance(entry, bool):
        raise refuse(shown)
    if isinstance(entry, str):
        try:
            entry = float(shown)
        except ValueError:
            raise refuse(shown) from None
    if not isinstance(entry, int | float) or not math.isfinite(entry):
        raise refuse(shown)
    return float(entry)


def parse_levels(value: object, option: str = "levels") -> tuple[float, ...]:
    """`"80,95"` (blob metadata), `[80, 95]` (JSON) or a tuple -> the sorted levels, or LevelsError."""
    if isinstance(value, str):
        entries: Iterable[object] = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        entries = value
    else:
        raise LevelsError(f"`{option}` must be a list of percentages like [80, 95] (or \"{EXAMPLE}\"); got {value!r}")
    levels = [_number(entry, option) for entry in entries]
    if not levels:
        raise LevelsError(f"`{option}` is empty; give 1 to {MAX_LEVELS} percentages like {EXAMPLE}")
    if len(levels) > MAX_LEVELS:
        raise LevelsError(f"`{option}` has {len(levels)} levels; at most {MAX_LEVELS} are allowed")
    for level in levels:
        if not LOWEST < level < HIGHEST:
            raise LevelsError(f"`{option}`: {level:g} is outside (50, 99.9); each level is a percentage above "
                              f"{LOWEST:g} and below {HIGHEST:g}")
    repeated = sorted({level for level in levels if levels.count(level) > 1})
    if repeated:
        raise LevelsError(f"`{option}`: {', '.join(f'{level:g}' for level in repeated)} given more than once")
    return tuple(sorted(levels))


def level_name(level: float) -> str:
    """80.0 -> "80", 97.5 -> "97.5": the suffix of the level's columns."""
    return f"{level:g}"


def bound_columns(levels: Iterable[float]) -> list[str]:
    """`lo_<level>`, `hi_<level>` for each level, in order: the forecast table's interval columns."""
    return [f"{side}_{level_name(level)}" for level in levels for side in ("lo", "hi")]
