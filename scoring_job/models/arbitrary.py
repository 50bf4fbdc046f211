"""Arbitrary-style networks: any painting becomes a style, as torch modules.

Read from `arbitrary_predict.onnx` and `arbitrary_transform.onnx` (int8 QDQ exports of a
TensorFlow model): a MobileNetV2 style predictor turns a 256x256 painting into a 100-number style
vector; a transformer network conditioned on that vector (through per-layer instance-norm scale
and shift) stylizes the content image. The transformer is fully convolutional, so unlike the
export (fixed 384x384) it runs at any size; its inputs are padded to a multiple of 4.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .multistyle import instance_norm
from .weights import load_conv_parameters

STYLE_VECTOR_SIZE = 100
STYLE_IMAGE_SIZE = 256
PREDICT_FILE = "arbitrary_predict.onnx"
TRANSFORM_FILE = "arbitrary_transform.onnx"


def _load_convs(model: nn.Module, file_name: str, names: dict[nn.Conv2d | nn.Linear, str]) -> None:
    """Copy each ONNX conv's (dequantized) weight and bias into the layer mapped to its name."""
    params = load_conv_parameters(file_name)
    with torch.no_grad():
        for layer, onnx_name in names.items():
            weight, bias = params[onnx_name]
            layer.weight.copy_(weight.reshape(layer.weight.shape))
            layer.bias.copy_(bias)
    model.eval()


def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' zero padding (the extra pixel goes bottom/right)."""
    pads = []
    for size in (x.shape[3], x.shape[2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear projection (+ skip)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = nn.Conv2d(in_channels, hidden, 1) if expansion != 1 else None
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=stride, groups=hidden)
        self.project = nn.Conv2d(hidden, out_channels, 1)
        self.stride = stride
        self.skip = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(_same_pad(y, 3, self.stride))))
        return x + y if self.skip else y


# (expansion, output channels, repeats, first stride) of MobileNetV2 at width 1.0
_MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                        (6, 160, 3, 2), (6, 320, 1, 1))


class StylePredictor(nn.Module):
    """Painting [N,3,256,256] in [0,1] -> style vector [N,100]."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, stride=2)
        blocks, channels = [], 32
        for expansion, out_channels, repeats, stride in _MOBILENET_V2_STAGES:
            for index in range(repeats):
                blocks.append(InvertedResidual(channels, out_channels, stride if index == 0 else 1, expansion))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels, 1280, 1)
        self.bottleneck = nn.Linear(1280, STYLE_VECTOR_SIZE)

    def forward(self, style_image: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(_same_pad(style_image, 3, 2)))
        x = F.relu6(self.head(self.blocks(x)))
        return self.bottleneck(x.mean(dim=(2, 3)))

    @classmethod
    def pretrained(cls) -> StylePredictor:
        model = cls()
        names: dict[nn.Conv2d | nn.Linear, str] = {
            model.stem: "MobilenetV2/Conv/weights",
            model.head: "MobilenetV2/Conv_1/weights",
            model.bottleneck: "mobilenet_conv/Conv/weights",
        }
        for index, block in enumerate(model.blocks):
            prefix = "MobilenetV2/expanded_conv" + (f"_{index}" if index else "")
            if block.expand is not None:
                names[block.expand] = f"{prefix}/expand/weights"
            names[block.depthwise] = f"{prefix}/depthwise/depthwise_weights"
            names[block.project] = f"{prefix}/project/weights"
        _load_convs(model, PREDICT_FILE, names)
        return model


class StyleConv(nn.Module):
    """Reflect-padded conv + instance norm whose scale and shift come from the style vector."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel)
        self.to_scale = nn.Linear(STYLE_VECTOR_SIZE, out_channels)
        self.to_shift = nn.Linear(STYLE_VECTOR_SIZE, out_channels)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        x = self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))
        return instance_norm(x, self.to_scale(style), self.to_shift(style))


class ResidualStyleBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = StyleConv(channels, channels, 3)
        self.second = StyleConv(channels, channels, 3)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return x + self.second(F.relu(self.first(x, style)), style)


class StyleTransformer(nn.Module):
    """Content [N,3,H,W] in [0,1] + one style vector [100] -> stylized image in [0,1]."""

    def __init__(self) -> None:
        super().__init__()
        self.contract = nn.ModuleList([nn.Conv2d(3, 8, 9), nn.Conv2d(8, 16, 3, stride=2),
                                       nn.Conv2d(16, 32, 3, stride=2)])
        self.residual = nn.ModuleList(ResidualStyleBlock(32) for _ in range(5))
        self.expand = nn.ModuleList([StyleConv(32, 16, 3), StyleConv(16, 8, 3), StyleConv(8, 3, 9)])

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = style.reshape(STYLE_VECTOR_SIZE).to(self.expand[0].conv.weight.dtype)
        x = content
        for conv in self.contract:
            pad = conv.kernel_size[0] // 2
            x = F.relu(conv(F.pad(x, (pad,) * 4, mode="reflect")))
        for block in self.residual:
            x = block(x, style)
        for layer in self.expand[:2]:
            x = F.relu(layer(F.interpolate(x, scale_factor=2.0, mode="nearest"), style))
        return torch.sigmoid(self.expand[2](x, style))

    @classmethod
    def pretrained(cls) -> StyleTransformer:
        model = cls()
        names: dict[nn.Conv2d | nn.Linear, str] = {
            conv: f"transformer/contract/conv{index}/weights" for index, conv in enumerate(model.contract, 1)
        }
        style_layers = [(f"residual/residual{b}/conv{c}", getattr(block, ("first", "second")[c - 1]))
                        for b, block in enumerate(model.residual, 1) for c in (1, 2)]
        style_layers += [(f"expand/conv{index}/conv", layer) for index, layer in enumerate(model.expand, 1)]
        for path, layer in style_layers:
            names[layer.conv] = f"transformer/{path}/weights"
            # In the export "Conv_1" feeds the multiply (scale) and "Conv" the subtract (shift).
            names[layer.to_scale] = f"style_params/transformer/{path}/StyleNorm/Conv_1/weights"
            names[layer.to_shift] = f"style_params/transformer/{path}/StyleNorm/Conv/weights"
        _load_convs(model, TRANSFORM_FILE, names)
        return model
