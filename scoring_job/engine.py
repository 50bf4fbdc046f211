"""Frames in, styled frames out: model choice, device, precision and batching in one place.

CUDA runs in bf16 (fp16 where bf16 is missing) with channels-last batches; CPU runs fp32
channels-last unless the user allows reduced precision (`fast`, precision_choice.py).
`torch.compile` fuses the pad/norm/ReLU chains (1.14-1.28x on this 2-core CPU at 640x360) and is
switched on when it pays (compile_choice.py); every batch is padded to the same shape so it
compiles once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .heap import keep_freed_memory
from .models.arbitrary import STYLE_IMAGE_SIZE, StylePredictor, StyleTransformer
from .models.int8 import quantize_image_conv
from .models.multistyle import SIZE_MULTIPLE, MultiStyleNet
from .style_spec import BuiltinStyle, ImageStyle, Style

log = logging.getLogger(__name__)


class StyleImageError(ValueError):
    """The style image is missing or cannot be decoded."""


@dataclass(frozen=True)
class DeviceConfig:
    device: torch.device
    dtype: torch.dtype
    batch_size: int
    int8: bool = False  # fp32 network whose image conv runs in int8 (models/int8.py; CPU only)

    @property
    def name(self) -> str:
        precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        return f"{self.device.type}:{'int8' if self.int8 else precision}"


PRECISIONS = ("auto", "fast", "fp32", "bf16", "fp16", "int8")


def choose_device(device: str = "auto", batch_size: int | None = None, precision: str = "auto") -> DeviceConfig:
    """CUDA (bf16 or fp16, batch 8) when present and allowed, else CPU (fp32, batch 1).

    On a 2-core CPU batching gains nothing (measured: bs2 is 8% slower per frame than bs1).
    Reduced precision on CPU only when named: `fast` on CPU is decided per job, on its own frames
    (precision_choice.stylizer_for), so it cannot be resolved here.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but CUDA is not available")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision in ("auto", "fast") and target.type == "cuda":
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    elif precision == "auto":
        precision = "fp32"
    elif precision == "fast":
        raise ValueError("precision 'fast' on CPU is chosen on the job's own frames: build the model with "
                         "precision_choice.stylizer_for")
    if precision == "int8" and target.type != "cpu":
        raise ValueError("precision int8 runs on CPU only; on CUDA use bf16 or fp16")
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "int8": torch.float32}
    default_batch = 8 if target.type == "cuda" else 1
    return DeviceConfig(target, dtypes[precision], batch_size or default_batch, int8=precision == "int8")


def load_style_image(path: Path) -> torch.Tensor:
    """Painting -> [1,3,256,256] float tensor in [0,1] (centre square crop, as the predictor expects)."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except FileNotFoundError:
        raise StyleImageError(f"style image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as error:
        raise StyleImageError(f"style image cannot be read: {path}: {error}") from None
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((STYLE_IMAGE_SIZE,) * 2, Image.LANCZOS)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


class Stylizer:
    """Applies one style to batches of RGB frames [N,H,W,3] of any size: uint8, or uint16 for a
    10-bit video (full 16-bit scale), which reach the model as floats without passing through 8 bits."""

    def __init__(
        self, style: Style, config: DeviceConfig, *, compile_model: bool = False, style_root: Path | None = None
    ) -> None:
        self.style = style
        self.config = config
        if isinstance(style, BuiltinStyle):
            self.model: torch.nn.Module = MultiStyleNet.pretrained()
            condition = torch.tensor(style.weights, dtype=torch.float32)
        elif isinstance(style, ImageStyle):
            painting = load_style_image((style_root or Path.cwd()) / style.name)
            with torch.inference_mode():
                condition = StylePredictor.pretrained()(painting)[0]
            self.model = StyleTransformer.pretrained()
        else:
            raise TypeError(f"unknown style {style!r}")
        self.model = self.model.to(config.device, config.dtype, memory_format=torch.channels_last)
        if config.int8:
            quantize_image_conv(self.model)
        if config.device.type == "cpu":
            keep_freed_memory()
        self.condition = condition.to(config.device)
        self._forward = self.model
        self._verified = True
        # called after each batch with (frames, seconds in the model) while set
        self.after_batch: Callable[[int, float], None] | None = None
        if compile_model:
            self.use_compiled()

    def use_compiled(self) -> None:
        """Run the torch.compile'd model from now on (compiled, or loaded from a cache, on the next call)."""
        self._forward = torch.compile(self.model, dynamic=False)
        self._verified = False

    @contextmanager
    def running_eagerly(self) -> Iterator[None]:
        """The eager model for a while (to time it against the compiled one), then back."""
        forward, self._forward = self._forward, self.model
        try:
            yield
        finally:
            self._forward = forward

    @property
    def compiled(self) -> bool:
        """False after a compile that failed and fell back to eager."""
        return self._forward is not self.model

    def _run_model(self, image: torch.Tensor) -> torch.Tensor:
        if self._verified:
            return self._forward(image, self.condition)
        try:  # compilation happens on the first call; without a working C compiler it fails there
            styled = self._forward(image, self.condition)
        except Exception as error:  # noqa: BLE001 - any compile failure: eager gives the same result
            log.warning("torch.compile failed (%s); running the model eagerly", str(error).splitlines()[0])
            self._forward = self.model
            styled = self._forward(image, self.condition)
        self._verified = True
        return styled

    @property
    def device_name(self) -> str:
        return self.config.name

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        return to_frames(self.styled(frames), frames.dtype)

    def styled(self, frames: np.ndarray) -> torch.Tensor:
        """Styled frames as float32 [N, 3, H, W] in [0, 1], left on the model's device."""
        count, height, width, _ = frames.shape
        if count < self.config.batch_size:  # keep one shape so a compiled model never recompiles
            frames = np.concatenate([frames, np.repeat(frames[-1:], self.config.batch_size - count, axis=0)])
        elif not frames.flags.writeable:  # torch refuses to wrap read-only memory
            frames = frames.copy()
        with torch.inference_mode():
            batch = torch.from_numpy(frames).to(self.config.device, non_blocking=True)
            # NHWC bytes viewed as NCHW are already channels-last: no copy.
            image = batch.permute(0, 3, 1, 2).to(self.config.dtype).div_(peak(frames.dtype))
            pad_h, pad_w = (-height) % SIZE_MULTIPLE, (-width) % SIZE_MULTIPLE
            if pad_h or pad_w:
                image = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")
            started = time.perf_counter()
            styled = self._run_model(image.contiguous(memory_format=torch.channels_last))
            if self.after_batch is not None:  # timed (compile_choice.py measures the eager model in production)
                if styled.is_cuda:
                    torch.cuda.synchronize(styled.device)
                self.after_batch(count, time.perf_counter() - started)
            return styled[:count, :, :height, :width].float()


def peak(dtype: np.dtype | type) -> int:
    """A frame type's white: 255 for uint8, 65535 for uint16."""
    return int(np.iinfo(dtype).max)


def to_frames(styled: torch.Tensor, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """Float [N, 3, H, W] in [0, 1] (any device) -> RGB frames [N, H, W, 3] of `dtype` in host memory."""
    top = peak(dtype)
    with torch.inference_mode():
        frames = styled.mul(top).round_().clamp_(0, top)
        if np.dtype(dtype) == np.uint8:
            return frames.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        # torch has no uint16 arithmetic on every device: int32 there, uint16 here.
        return frames.to(torch.int32).permute(0, 2, 3, 1).contiguous().cpu().numpy().astype(np.uint16)
