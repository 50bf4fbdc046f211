"""Checking a job's style and options before any work is done: bad ones are bad input, not a failed job.

Used by the probe activity (uploads started by the blob trigger) and by `POST /api/jobs`, so both
paths refuse the same specs with the same words.
"""

from __future__ import annotations

import av
from pydantic import ValidationError

from restyle.blob_names import UnsafeBlobName, is_url, safe_blob_name
from restyle.storage import BlobStore
from restyle.tempfiles import scratch_dir
from scoring_job.manifest import ScoringOptions
from scoring_job.style_spec import ImageStyle, StyleSpecError, parse_style


class JobInputProblem(ValueError):
    """A style spec or scoring options that cannot be used; the message says why."""

    def __init__(self, message: str, field: str = "style", missing: bool = False) -> None:
        super().__init__(message)
        self.field = field  # "style" or "options"
        self.missing = missing  # a named style image does not exist (HTTP 404 rather than 400)


def check_options(options: object) -> dict:
    """Scoring options as the manifest takes them (only those that differ from the defaults)."""
    if not isinstance(options, dict):
        raise JobInputProblem(f"options must be a JSON object, got {type(options).__name__}", "options")
    try:
        return ScoringOptions(**options).model_dump(exclude_defaults=True)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise JobInputProblem(f"invalid options: {problems}", "options") from None


def check_style(store: BlobStore, spec: str) -> str:
    """The spec, normalised; a style image must exist in the styles container and decode."""
    if is_url(spec):
        raise JobInputProblem(f"style {spec.strip()!r} is a URL; URLs are never fetched: upload the picture to "
                              f"{store.settings.styles_container}/ and name it, or use a built-in style")
    try:
        style = parse_style(spec)
    except StyleSpecError as error:
        raise JobInputProblem(str(error)) from None
    if not isinstance(style, ImageStyle):
        return spec.strip()
    try:
        name = safe_blob_name(style.name)
    except UnsafeBlobName as error:
        raise JobInputProblem(f"style image name: {error}") from None
    container = store.settings.styles_container
    if not store.exists(container, name):
        raise JobInputProblem(f"style image {container}/{name} does not exist; upload it there first", missing=True)
    with scratch_dir(store.settings.temp_root, "style-") as scratch:
        local = store.download_file(container, name, scratch / "style")
        if not _decodes_as_image(local):
            raise JobInputProblem(f"style image {container}/{name} is not a readable picture")
    return name


def _decodes_as_image(path) -> bool:
    try:
        with av.open(str(path)) as container:
            return next(container.decode(video=0), None) is not None
    except (av.FFmpegError, IndexError, ValueError):
        return False
