"""The scoring job's input contract: `manifest.json` (torch-free; the Function App writes it).

Versioned: a reader refuses a schema version it does not know instead of misreading it. Paths
inside are relative to the input folder, so the same manifest works on a local disk and on an
Azure ML datastore mount.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from .files import write_text_atomic
from .output_format import CODEC_CHOICES, OutputFormat
from .style_spec import ImageStyle, StyleSpecError, parse_style

SCHEMA_VERSION = 1
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
MANIFEST_NAME = "manifest.json"
# Chosen on bench/results/temporal.json: see docs/scoring-engine.md, "Temporal stability".
DEFAULT_STABILITY = 0.5
DEFAULT_QUALITY = 95.0  # VMAF (0-100) against a lossless encode of the same styled frames: quality_target.py


class ManifestError(ValueError):
    """manifest.json is missing, malformed, or of an unknown schema version."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or not value.strip():
        raise ValueError(f"must be a relative path inside the input folder, got {value!r}")
    return value


class Segment(_Strict):
    index: int = Field(ge=0)
    path: str  # relative to the input folder
    frames: int = Field(gt=0)

    @field_validator("path")
    @classmethod
    def _inside_input_folder(cls, value: str) -> str:
        return _relative_path(value)

    @property
    def name(self) -> str:
        """Stem of the output files for this segment: `<name>.mp4` and `<name>.json`."""
        return f"segment_{self.index:05d}"


class ScoringOptions(_Strict):
    # Encoder quality: `quality` is a VMAF target (50-100) the job finds the largest x264 / x265 CRF
    # for (quality_target.py; H.264 and HEVC outputs); `crf` is the expert override that skips the
    # search, on the encoder's scale: 0-51 for H.264/HEVC (x264/x265), 0-63 for AV1 (SVT-AV1) and VP9.
    # Neither set: VMAF 95 for H.264 and HEVC, CRF 18 for AV1 and VP9.
    crf: int | None = Field(default=None, ge=0, le=63)
    quality: float | None = Field(default=None, ge=50, le=100)
    # The output's codec family: "source" keeps the upload's (output_format.choose_output), or one named.
    codec: Literal[CODEC_CHOICES] = "source"
    preset: Literal[X264_PRESETS] = "veryfast"  # see video_io.DEFAULT_PRESET
    scale: float = Field(default=1.0, gt=0, le=1)
    batch_size: int | None = Field(default=None, gt=0)
    # auto: bf16/fp16 on CUDA, fp32 on CPU; fast: reduced precision allowed, the fastest measured here
    # (int8 image conv, bf16 or fp16 on CPU; precision_choice.py); or one named
    precision: Literal["auto", "fast", "fp32", "bf16", "fp16", "int8"] = "auto"
    # "auto" compiles only when it pays for the rank's frames (compile_choice.py); true/false force it.
    compile: bool | Literal["auto"] = "auto"
    # Temporal stability (scoring_job/temporal.py): weight of the motion-carried previous styled frame;
    # 0 = every frame on its own (the output before the option existed, bit for bit).
    stability: float = Field(default=DEFAULT_STABILITY, ge=0, le=1)

    @field_validator("quality")
    @classmethod
    def _not_with_crf(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("crf") is not None:
            raise ValueError("set crf or quality, not both: crf fixes the encoder's CRF, quality searches for "
                             "the largest CRF reaching that VMAF")
        return value

    @model_validator(mode="after")
    def _crf_on_the_codec_scale(self) -> ScoringOptions:
        if self.crf is not None and self.crf > 51 and self.codec != "av1":
            which = "the source's codec (H.264 and HEVC stop at 51)" if self.codec == "source" else self.codec
            raise ValueError(f"crf {self.crf} is outside 0-51, the scale of {which}; only codec av1 goes up to 63")
        return self

    @property
    def quality_target(self) -> float | None:
        """The VMAF to search a CRF for; None when `crf` fixes it."""
        return None if self.crf is not None else (self.quality if self.quality is not None else DEFAULT_QUALITY)


class Manifest(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str = Field(min_length=1)
    fps: str = Field(pattern=r"^\d+/\d+$")  # exact rational frame rate of the source
    style: str  # a style spec; an image style names a file relative to the input folder
    options: ScoringOptions = ScoringOptions()
    # What the styled segments are encoded as, decided at probe time from the source (older manifests: H.264).
    video_format: OutputFormat = OutputFormat()
    segments: tuple[Segment, ...] = Field(min_length=1)

    @field_validator("style")
    @classmethod
    def _valid_style(cls, value: str) -> str:
        try:
            style = parse_style(value)
        except StyleSpecError as error:
            raise ValueError(str(error)) from None
        return _relative_path(value) if isinstance(style, ImageStyle) else value

    @model_validator(mode="after")
    def _unique_indices(self) -> Manifest:
        indices = [segment.index for segment in self.segments]
        if len(set(indices)) != len(indices):
            raise ValueError("segment indices must be unique")
        return self

    @property
    def total_frames(self) -> int:
        return sum(segment.frames for segment in self.segments)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ManifestError(f"manifest is not valid JSON: {error}") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise ManifestError(f"unsupported manifest schema_version {version!r}; this job reads {SCHEMA_VERSION}")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise ManifestError(f"invalid manifest: {problems}") from None

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_NAME
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"no {MANIFEST_NAME} in {folder}") from None

    def save(self, folder: Path) -> Path:
        return write_text_atomic(folder / MANIFEST_NAME, self.to_json())
