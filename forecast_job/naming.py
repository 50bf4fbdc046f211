"""Names that tie a partition to its data, results and registered models (stdlib only: the
Function App's real-time endpoint computes them from a request's partition keys)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

_DATASET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def partition_id(keys: Mapping[str, str]) -> str:
    """Stable across runs and machines (a hash of the key names and values), so a re-trained
    partition finds its champion; short and path-safe for blob and model names."""
    digest = hashlib.sha256(json.dumps(sorted(keys.items()), ensure_ascii=False).encode()).hexdigest()
    return f"p{digest[:16]}"


def check_dataset(dataset: str) -> str:
    if not _DATASET.match(dataset):
        raise ValueError(f"dataset name {dataset!r} must be 1-63 lower-case letters, digits, '-' or '_'")
    return dataset


def model_name(dataset: str, pid: str) -> str:
    """The registered model of one partition: every run's model for it is a version of this name."""
    return f"{check_dataset(dataset)}-{pid}"
