"""Durable activity triggers for the media steps: thin adapters over the plain functions.

Inputs and outputs are small JSON dicts (blob names, counts), never media bytes.
"""

from __future__ import annotations

from functools import cache

import azure.durable_functions as df

from restyle.settings import get_settings
from restyle.storage import BlobStore

from .audio import extract_audio_track
from .cleanup import cleanup_work
from .probe_input import probe_input
from .split import split_range
from .stitch import stitch_output

bp = df.Blueprint()


@cache
def _store() -> BlobStore:
    store = BlobStore.from_settings(get_settings())
    if get_settings().uses_connection_string:  # Azurite: nothing provisions the containers
        store.ensure_containers()
    return store


@bp.activity_trigger(input_name="payload")
def probe(payload: dict) -> dict:
    return probe_input(_store(), payload["blob"], payload["job_id"])


@bp.activity_trigger(input_name="payload")
def split(payload: dict) -> dict:
    return split_range(_store(), payload["blob"], payload["job_id"], payload["first"], payload["last"])


@bp.activity_trigger(input_name="payload")
def extract_audio(payload: dict) -> dict:
    return extract_audio_track(_store(), payload["blob"], payload["job_id"])


@bp.activity_trigger(input_name="payload")
def stitch(payload: dict) -> dict:
    return stitch_output(_store(), payload["blob"], payload["job_id"], payload["video"], payload["audio"])


@bp.activity_trigger(input_name="payload")
def cleanup(payload: dict) -> dict:
    return cleanup_work(_store(), payload["job_id"], payload["succeeded"])
