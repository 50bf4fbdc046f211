"""One log line per host event: `<time> <event> key=value ...`, easy to read and to grep in tests."""

from __future__ import annotations

import json
import logging
import sys

LOGGER = logging.getLogger("devhost")


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level)
    LOGGER.propagate = False


def _value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


def event(kind: str, level: int = logging.INFO, **fields: object) -> None:
    """Log `kind` with its fields; None values are left out."""
    parts = [kind, *(f"{key}={_value(value)}" for key, value in fields.items() if value is not None)]
    LOGGER.log(level, " ".join(parts))
