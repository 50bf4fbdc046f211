"""The image-facing convolution in int8 (oneDNN's u8 x s8 convolution), for the opt-in fast mode.

The first convolution of both networks reads the frame itself (3 channels, 9x9) and is the
costliest layer: 40% of MultiStyleNet's multiply-adds at any size, and oneDNN runs it in fp32
well below the CPU's peak because 3 input channels fill few vector lanes. Its input comes from
8-bit frames, so quantizing it to uint8 (scale 1/255) loses nothing; only the weights are rounded,
per output channel to int8. The product is accumulated in int32 and written as bf16 where the
CPU has bf16 (half the bytes of the 32-channel full-size output: the int8 layer then measured
1.18x the fp32 model instead of 1.11x with an fp32 output, compiled, same process), else fp32;
everything after this layer (instance norm statistics, the other convolutions) runs in fp32.
Measured on real 1280x720 frames: 46.1-47.6 dB PSNR against the fp32 output (47.0-48.5 with the
fp32 output; tests/test_precision.py keeps it >= 35 dB). Quantizing more layers falls below
35 dB (34-38 dB with the two stride-2 convs, 32-34 dB with the residual blocks, dynamic
per-frame activation ranges), and a uint8 output needs a range fixed in advance: 24-26 dB.

Without VNNI (AVX2, or AVX-512 before Cascade Lake) oneDNN multiplies u8 x s8 with VPMADDUBSW,
which adds each pair of products into int16 with saturation, and leaves it to the caller to keep
the pair sum in range (oneDNN's developer guide, doc/advanced/int8_computations.md, "1.1.
Processors with the Intel AVX2 or Intel AVX-512 Support": "a user can use u7 [0, 127] instead
of u8 for the unsigned input, or s7 [-64, 63] instead of the s8 one"). Full-range weights then
lost 25-30 dB (21.4-22.0 dB against fp32 with ONEDNN_MAX_CPU_ISA=AVX2, the figures reported from
a Zen 3 machine). So the weights are rounded to s7 (|w| <= 63: 2 x 255 x 63 < 32767) wherever a
probe convolution shows that this machine's kernel saturates; the pixels keep all 8 bits.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

INT8_MAX = 127
INT7_MAX = 63  # s7: two u8 x s7 products always fit int16, with or without VNNI
_PROBE_SHAPE = (1, 3, 9, 9)  # the image conv's own shape, so the probe runs the same kernel


def int8_supported() -> bool:
    """oneDNN's quantized convolution is built into this torch (x86 CPU builds)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qconv2d_pointwise")


@functools.cache
def int8_products_exact() -> bool:
    """Whether this machine's u8 x s8 convolution sums full-range products exactly (VNNI, AMX) or
    saturates them in int16 (VPMADDUBSW). Tried, not read from CPU flags: ONEDNN_MAX_CPU_ISA or a
    hypervisor can make oneDNN run another kernel than the flags suggest."""
    pixels = torch.full(_PROBE_SHAPE, 255, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    weight = torch.full(_PROBE_SHAPE, INT8_MAX, dtype=torch.int8).contiguous(memory_format=torch.channels_last)
    unit = torch.ones(1)
    packed = torch.ops.onednn.qconv_prepack(weight, unit, 1.0, 0, [1, 1], [0, 0], [1, 1], 1, None)
    out = torch.ops.onednn.qconv2d_pointwise(pixels, 1.0, 0, packed, unit, torch.zeros(1, dtype=torch.int64), None,
                                             [1, 1], [0, 0], [1, 1], 1, 1.0, 0, torch.float32, "none", [], "")
    return float(out.flatten()[0]) == 255.0 * INT8_MAX * weight[0].numel()


def weight_levels() -> int:
    """The largest weight magnitude this machine's int8 convolution can take without saturating."""
    return INT8_MAX if int8_products_exact() else INT7_MAX


class Int8ImageConv(nn.Module):
    """Drop-in for an unpadded nn.Conv2d whose input is an image in [0, 1] made from 8-bit frames."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.padding != (0, 0) or conv.padding_mode != "zeros":
            raise ValueError("Int8ImageConv expects the caller to pad (the networks reflect-pad first)")
        weight = conv.weight.detach().float().cpu()
        self.levels = weight_levels()
        scale = (weight.abs().amax(dim=(1, 2, 3)) / self.levels).clamp_min(torch.finfo(torch.float32).tiny)
        quantized = (weight / scale.view(-1, 1, 1, 1)).round().clamp(-self.levels, self.levels).to(torch.int8)
        self.kernel_size, self.groups = conv.kernel_size, conv.groups
        self.stride, self.dilation = list(conv.stride), list(conv.dilation)
        self.output_dtype = torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32
        self.register_buffer("weight_scale", scale)
        self.register_buffer("weight_zero_point", torch.zeros(scale.numel(), dtype=torch.int64))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float().cpu())
        # oneDNN's blocked int8 layout; an opaque tensor, so it is kept out of the state dict
        self.packed = torch.ops.onednn.qconv_prepack(
            quantized.contiguous(memory_format=torch.channels_last), scale, 1 / 255, 0, self.stride, [0, 0],
            self.dilation, self.groups, None)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pixels = image.mul(255).round_().to(torch.uint8)  # exact for frames that were 8-bit
        return torch.ops.onednn.qconv2d_pointwise(
            pixels.contiguous(memory_format=torch.channels_last), 1 / 255, 0, self.packed, self.weight_scale,
            self.weight_zero_point, self.bias, self.stride, [0, 0], self.dilation, self.groups, 1.0, 0,
            self.output_dtype, "none", [], "").float()  # fused into the norm's kernels when compiled


def quantize_image_conv(model: nn.Module) -> nn.Module:
    """Replace the first convolution of MultiStyleNet or StyleTransformer (`contract[0]`) in place."""
    first = model.contract[0]
    if isinstance(first, nn.Conv2d):
        model.contract[0] = Int8ImageConv(first)
    else:
        first.conv = Int8ImageConv(first.conv)
    return model
