"""`restyle submit`: check the files, style and options here (so a typo fails before an upload), then
upload each file to input/ with the style and options as blob metadata. The blob trigger starts the
job, exactly as for any upload; its id is known at once, because it is a hash of the blob name,
its ETag, style and options (api.jobs.job_instance_id), computed here as the trigger will.

Options are generic: `--option key=value` passes any field of the scoring options
(scoring_job.manifest.ScoringOptions) through, so a new option needs no change here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError
from tqdm import tqdm

from activities.media.job_inputs import JobInputProblem, check_options
from api.jobs import job_instance_id
from api.uploads import style_and_options
from restyle.blob_names import UnsafeBlobName, safe_blob_name
from scoring_job.style_spec import ImageStyle, StyleSpecError, parse_style

from .target import CliError, Target, storage_error

MAX_NAME_TRIES = 100


@dataclass(frozen=True)
class Submitted:
    path: Path
    blob: str
    job_id: str


def parse_options(pairs: list[str], scale: str | None) -> dict[str, str]:
    """`--option k=v` (repeatable) and `--scale` as blob metadata, checked as the job will check them."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--option {pair!r} is not key=value (e.g. --option crf=20)", 2)
        options[key.strip()] = value.strip()
    if scale is not None:
        options["scale"] = scale
    try:
        check_options(options)
    except JobInputProblem as error:
        raise CliError(str(error), 2) from None
    return options


def check_style(target: Target, spec: str) -> str:
    """A built-in style, a blend, or a picture: one already in the styles container, or a file here,
    which is uploaded there under its own name (unless that name holds another picture)."""
    try:
        style = parse_style(spec)
    except StyleSpecError as error:
        raise CliError(f"unknown style {spec!r}: {error}", 2) from None
    if not isinstance(style, ImageStyle):
        return spec.strip()
    local = Path(style.name).expanduser()
    name = local.name if local.is_file() else style.name
    container = target.settings.styles_container
    try:
        safe_blob_name(name)
        if local.is_file():
            _upload_style(target, local, container)
        elif not target.store.exists(container, name):
            raise CliError(f"style image {container}/{name} does not exist and no file {local} is here", 2)
    except UnsafeBlobName as error:
        raise CliError(f"style image name: {error}", 2) from None
    except AzureError as error:
        raise storage_error(target, error) from None
    return name


def _upload_style(target: Target, local: Path, container: str) -> None:
    data = local.read_bytes()
    try:
        target.store.service.get_blob_client(container, local.name).upload_blob(data, overwrite=False)
    except ResourceExistsError:
        if target.store.read_bytes(container, local.name) != data:
            raise CliError(f"{container}/{local.name} holds another picture; rename {local} to use it", 2) from None


def check_files(paths: list[Path]) -> list[Path]:
    for path in paths:
        if not path.exists():
            raise CliError(f"no such file: {path}", 3)
        if not path.is_file():
            raise CliError(f"not a file: {path}", 3)
    return paths


def upload(target: Target, path: Path, metadata: dict[str, str]) -> Submitted:
    """Upload under the file's name, or `name-2.ext`, ... when that is taken: never over another upload
    (a replaced upload would fail the job reading it)."""
    container = target.settings.input_container
    size = path.stat().st_size
    for attempt in range(1, MAX_NAME_TRIES + 1):
        blob = path.name if attempt == 1 else f"{path.stem}-{attempt}{path.suffix}"
        client = target.store.service.get_blob_client(container, blob)
        try:
            with path.open("rb") as data, _upload_bar(path.name, size) as bar:
                result = client.upload_blob(data, length=size, metadata=metadata, overwrite=False,
                                            max_concurrency=2, progress_hook=lambda done, _total: bar.update(
                                                done - bar.n))
        except ResourceExistsError:
            continue
        except AzureError as error:
            raise storage_error(target, error) from None
        style, options = style_and_options(metadata, target.settings.default_style)
        return Submitted(path, blob, job_instance_id(blob, result["etag"].strip('"'), style, options))
    raise CliError(f"{container}/ already holds {path.name} and {MAX_NAME_TRIES - 1} numbered copies; rename the file")


def _upload_bar(label: str, size: int) -> tqdm:
    return tqdm(total=size, desc=f"uploading {label}", unit="B", unit_scale=True, leave=False, file=sys.stderr,
                disable=not sys.stderr.isatty())


def submit(target: Target, paths: list[Path], style: str, options: list[str], scale: str | None) -> list[Submitted]:
    check_files(paths)
    metadata = {"style": check_style(target, style)} | parse_options(options, scale)
    return [upload(target, path, metadata) for path in paths]
