"""One parser for style specs, used by the CLI, the scoring job and the Function App (torch-free).

Valid forms: a built-in style index (`19`), a blend of built-in styles (`3:0.5,12:0.5`), or the
name of a style image (any painting; `starry.jpg`), which selects the arbitrary-style model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

NUM_BUILTIN_STYLES = 26
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
VALID_FORMS = (
    f"a built-in style index 0-{NUM_BUILTIN_STYLES - 1} (e.g. 19), a blend of built-in styles "
    f"(e.g. 3:0.5,12:0.5), or a style image name ending in {', '.join(IMAGE_EXTENSIONS)}"
)
_BLEND_PART = re.compile(r"^\s*(\d+)\s*(?::\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*)?$")


class StyleSpecError(ValueError):
    """A style spec that is none of the valid forms."""


@dataclass(frozen=True)
class BuiltinStyle:
    """A normalised blend of the 26 built-in styles: weights[i] is the share of style i."""

    weights: tuple[float, ...]

    @property
    def spec(self) -> str:
        return ",".join(f"{index}:{weight:g}" for index, weight in enumerate(self.weights) if weight)


@dataclass(frozen=True)
class ImageStyle:
    """A painting used as the style; `name` is a path or blob name, resolved by the caller."""

    name: str

    @property
    def spec(self) -> str:
        return self.name


Style = BuiltinStyle | ImageStyle


def parse_style(spec: str) -> Style:
    """Parse a style spec; raise StyleSpecError naming the valid forms when it is none of them."""
    text = spec.strip() if isinstance(spec, str) else ""
    if not text:
        raise StyleSpecError(f"empty style spec; use {VALID_FORMS}")
    if PurePath(text).suffix.lower() in IMAGE_EXTENSIONS:
        return ImageStyle(text)
    weights = [0.0] * NUM_BUILTIN_STYLES
    for part in text.split(","):
        match = _BLEND_PART.match(part)
        if match is None:
            raise StyleSpecError(f"bad style spec {spec!r}; use {VALID_FORMS}")
        index = int(match.group(1))
        if index >= NUM_BUILTIN_STYLES:
            raise StyleSpecError(f"style index {index} out of range in {spec!r}; use {VALID_FORMS}")
        weights[index] += float(match.group(2)) if match.group(2) else 1.0
    total = sum(weights)
    if total <= 0:
        raise StyleSpecError(f"style weights in {spec!r} add up to zero; use {VALID_FORMS}")
    return BuiltinStyle(tuple(weight / total for weight in weights))
