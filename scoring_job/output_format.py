"""What the styled video is encoded as: the source's codec family, bit depth, chroma and colour, kept.

Decided once from the probed source (the Function App writes it into the manifest; the local CLI
decides it from its input), so every segment of a job is encoded alike and the job's `streams`
record can say up front what was converted and why. Torch-free.

Rules (docs/media.md, "What comes out"): H.264, HEVC, AV1 and VP9 sources keep their family
(libx264, libx265, libsvtav1, libvpx-vp9); anything else becomes H.264. A `codec` option of h264,
hevc or av1 names the family instead. Bit depth (8, or 10 for anything deeper than 8), chroma
subsampling, colour tags and HDR10 metadata are kept where the encoder can carry them; what it
cannot is listed in `conversions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

CODEC_CHOICES = ("source", "h264", "hevc", "av1")


@dataclass(frozen=True)
class Encoder:
    name: str  # ffmpeg's encoder
    label: str  # as people say it
    max_crf: int  # its constant-quality scale: 0 (best) .. max_crf
    chroma: tuple[str, ...]  # subsamplings it encodes
    params: str | None  # its `-<x>-params` option, for HDR10 metadata; None: the bitstream has no place for it


ENCODERS = {
    "h264": Encoder("libx264", "H.264", 51, ("420", "422", "444"), "x264-params"),
    "hevc": Encoder("libx265", "HEVC", 51, ("420", "422", "444"), "x265-params"),
    "av1": Encoder("libsvtav1", "AV1", 63, ("420",), "svtav1-params"),
    # VP9 keeps VP9: it is what plays where the source played, and libvpx-vp9 takes every chroma
    # and depth the source can have (SVT-AV1 only 4:2:0). Its HDR10 metadata lives in the container
    # (stitch writes an MP4's SmDm/CoLL boxes).
    "vp9": Encoder("libvpx-vp9", "VP9", 63, ("420", "422", "444"), None),
}
# Decoder names PyAV reports -> codec family.
FAMILIES = {"h264": "h264", "hevc": "hevc", "av1": "av1", "libdav1d": "av1", "libaom-av1": "av1", "vp9": "vp9",
            "libvpx-vp9": "vp9"}
MAX_DEPTH = 10  # libx264 and SVT-AV1 stop at 10 bits, and so do split's re-encoded segments (libx264)
# swscale's names for a matrix (`scale=in_color_matrix=`/`out_color_matrix=`).
SCALE_MATRICES = {"bt709": "bt709", "bt470bg": "bt601", "smpte170m": "smpte170m", "fcc": "fcc",
                  "smpte240m": "smpte240m", "bt2020nc": "bt2020", "bt2020c": "bt2020"}


def encoder_family(codec: str) -> str:
    """The family an ffmpeg encoder writes: `libx265` -> `hevc`; NVENC's is H.264."""
    return "h264" if codec == "h264_nvenc" else next(family for family, encoder in ENCODERS.items()
                                                     if encoder.name == codec)


def max_crf(codec: str) -> int:
    """The top of an encoder's constant-quality scale."""
    return ENCODERS[encoder_family(codec)].max_crf


# x264's preset names on SVT-AV1's 0 (slowest) .. 13 scale and libvpx's cpu-used 0 .. 5 (`good` deadline).
X264_PRESET_ORDER = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
SVT_PRESETS = dict(zip(X264_PRESET_ORDER, (12, 11, 10, 9, 8, 6, 5, 4, 2), strict=True))
VPX_CPU_USED = dict(zip(X264_PRESET_ORDER, (5, 5, 5, 4, 3, 2, 1, 0, 0), strict=True))


def other_encoder_args(codec: str, crf: int, preset: str) -> dict[str, object]:
    """libx265 (same preset names), libsvtav1 and libvpx-vp9 at constant quality."""
    if preset not in X264_PRESET_ORDER:
        raise ValueError(f"{codec} takes x264's preset names ({', '.join(X264_PRESET_ORDER)}), got {preset!r}")
    if codec == "libx265":
        return {"vcodec": "libx265", "crf": crf, "preset": preset, "x265-params": "log-level=error"}
    if codec == "libsvtav1":
        return {"vcodec": "libsvtav1", "crf": crf, "preset": SVT_PRESETS[preset]}
    return {"vcodec": "libvpx-vp9", "crf": crf, "b:v": 0, "deadline": "good", "cpu-used": VPX_CPU_USED[preset],
            "row-mt": 1}


class OutputFormat(BaseModel):
    """The styled video's codec and picture format; the defaults are 8-bit 4:2:0 H.264, untagged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    codec: Literal["h264", "hevc", "av1", "vp9"] = "h264"
    bit_depth: Literal[8, 10] = 8
    chroma: Literal["420", "422", "444"] = "420"
    color_primaries: str | None = None
    color_trc: str | None = None
    colorspace: str | None = None
    color_range: Literal["tv", "pc"] | None = None
    master_display: str | None = None  # x265's syntax, see probe.VideoInfo
    content_light: str | None = None
    conversions: tuple[str, ...] = ()  # what the source had that this output does not, and why

    @property
    def encoder(self) -> Encoder:
        return ENCODERS[self.codec]

    @property
    def rgb_pix_fmt(self) -> str:
        """The frames between ffmpeg and the model: 16 bits a channel above 8-bit, so a 10-bit
        picture never goes through 8 bits on its way to and from the model."""
        return "rgb24" if self.bit_depth == 8 else "rgb48le"

    def pix_fmt(self, width: int, height: int) -> str:
        """The encoded pixel format; odd sides force 4:4:4 (4:2:0 and 4:2:2 cannot hold an odd size;
        choose_output never gives SVT-AV1, which has no 4:4:4, an odd size)."""
        chroma = "444" if width % 2 or height % 2 else self.chroma
        return f"yuv{chroma}p" + ("10le" if self.bit_depth == 10 else "")

    def to_rgb(self) -> dict[str, str]:
        """`scale` options that read the source's YUV with its own matrix and range (swscale
        assumes BT.601 limited for untagged input)."""
        return _scale_options("in", self.colorspace, self.color_range)

    def from_rgb(self) -> dict[str, str]:
        """`scale` options that write YUV in the source's matrix and range, the inverse of to_rgb."""
        return _scale_options("out", self.colorspace, self.color_range)

    def frame_tags(self) -> dict[str, str]:
        """`setparams` options that tag the frames, which the encoder writes into the bitstream and
        the muxer into the container (an output option alone is overridden by the frames' tags)."""
        tags = {"color_primaries": self.color_primaries, "color_trc": self.color_trc,
                "colorspace": self.colorspace, "range": self.color_range}
        return {key: value for key, value in tags.items() if value}

    def encoder_params(self) -> dict[str, str]:
        """HDR10 mastering display and content light level for the encoder's SEI / metadata OBUs."""
        option = self.encoder.params
        parts = []
        if option and self.master_display:
            display = _svt_mastering_display(self.master_display) if self.codec == "av1" else self.master_display
            parts.append(f"{'master' if self.codec == 'hevc' else 'mastering'}-display={display}")
        if option and self.content_light:
            parts.append({"h264": "cll", "hevc": "max-cll", "av1": "content-light"}[self.codec] + "="
                         + self.content_light)
        if self.codec == "hevc" and self.master_display:
            parts.append("hdr10=1")
        return {option: ":".join(parts)} if parts else {}


def choose_output(source: Mapping[str, object], codec: str = "source", scale: float = 1.0) -> OutputFormat:
    """The output format for a source described by probe.VideoInfo's fields (`asdict(info)` or the
    job's video facts), under the `codec` and `scale` options."""
    if codec not in CODEC_CHOICES:
        raise ValueError(f"codec must be one of {', '.join(CODEC_CHOICES)}, got {codec!r}")
    conversions: list[str] = []
    odd = scale == 1 and bool(int(source.get("width") or 0) % 2 or int(source.get("height") or 0) % 2)
    target = _family(str(source.get("codec") or "unknown"), codec, odd, conversions)
    encoder = ENCODERS[target]
    depth = int(source.get("bit_depth") or 8)
    if depth > MAX_DEPTH:
        conversions.append(f"{depth}-bit -> {MAX_DEPTH}-bit: the encoders and intermediate segments here hold at "
                           f"most {MAX_DEPTH} bits")
    chroma = str(source.get("chroma") or "420")
    # 4:4:0 or 4:1:1 become 4:4:4 where it exists (no chroma lost), else 4:2:0.
    kept_chroma = chroma if chroma in encoder.chroma else "444" if "444" in encoder.chroma else "420"
    if kept_chroma != chroma:
        conversions.append(f"{_ratio(chroma)} -> {_ratio(kept_chroma)}: {encoder.name} encodes "
                           + ", ".join(map(_ratio, encoder.chroma)))
    matrix = source.get("colorspace")
    if matrix and matrix != "gbr" and matrix not in SCALE_MATRICES:
        conversions.append(f"matrix {matrix} -> untagged (BT.601): swscale converts RGB to YUV only with "
                           + ", ".join(sorted(SCALE_MATRICES)))
    if source.get("has_alpha"):
        conversions.append("alpha channel not kept: the model styles RGB")
    keep_hdr = _hdr_note(source, encoder, conversions)
    return OutputFormat(
        codec=target,
        bit_depth=8 if depth <= 8 else 10,
        chroma=kept_chroma,
        color_primaries=_known(source.get("color_primaries")),
        color_trc=_known(source.get("color_trc")),
        colorspace=str(matrix) if matrix in SCALE_MATRICES else None,
        color_range=source.get("color_range") if source.get("color_range") in ("tv", "pc") else None,
        master_display=source.get("master_display") if keep_hdr else None,
        content_light=source.get("content_light") if keep_hdr else None,
        conversions=tuple(conversions),
    )


def _family(source_codec: str, codec: str, odd: bool, conversions: list[str]) -> str:
    """The output's codec family: the option's, else the source's where we have its encoder, else H.264."""
    target = codec if codec != "source" else FAMILIES.get(source_codec)
    if target is None:
        conversions.append(f"{source_codec} -> H.264: no {source_codec} encoder here; H.264 plays everywhere")
        target = "h264"
    if target == "av1" and odd:
        conversions.append("AV1 -> H.264 (4:4:4): SVT-AV1 crops an odd-sized picture to even sides; H.264 keeps "
                           "the exact size")
        target = "h264"
    return target


def _hdr_note(source: Mapping[str, object], encoder: Encoder, conversions: list[str]) -> bool:
    """Whether the encoder carries the source's HDR10 metadata; either way, where it goes is listed."""
    if not (source.get("master_display") or source.get("content_light")):
        return False
    if encoder.params is None:
        conversions.append(f"HDR10 metadata kept in an MP4 output as SmDm/CoLL boxes (stitch writes them; "
                           f"{encoder.label} has no place for it in its bitstream); a Matroska output loses it")
        return True
    conversions.append(f"HDR10 metadata kept in the {encoder.label} bitstream, and in an MP4 output as mdcv/clli "
                       "boxes too (stitch writes them); a Matroska output has it in the bitstream only")
    return True


def _ratio(chroma: str) -> str:
    return f"4:{chroma[1]}:{chroma[2]}"


def _known(value: object) -> str | None:
    return str(value) if value else None


def _scale_options(side: str, colorspace: str | None, color_range: str | None) -> dict[str, str]:
    options = {}
    if colorspace in SCALE_MATRICES:
        options[f"{side}_color_matrix"] = SCALE_MATRICES[colorspace]
    if color_range:
        options[f"{side}_range"] = color_range
    return options


def _svt_mastering_display(x265: str) -> str:
    """x265's G(13250,34500)...L(10000000,1) (1/50000 and 1/10000 units) in SVT-AV1's decimals."""
    out = []
    for part in x265.rstrip(")").split(")"):
        name, values = part.split("(")
        scale = 10000 if name == "L" else 50000
        out.append(f"{name}(" + ",".join(f"{int(v) / scale:g}" for v in values.split(",")) + ")")
    return "".join(out)
