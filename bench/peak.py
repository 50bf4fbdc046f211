"""The machine's measured arithmetic peak: large matmuls timed in the same run as the model.

A 2048x2048x2048 matmul is compute-bound (it reuses every operand ~680 times from cache), so its
GFLOP/s is what oneDNN/MKL can reach on these cores with all threads, in fp32 and in bf16. The
model's achieved GFLOP/s divided by this is its distance to the limit (`flop_efficiency`),
measured rather than computed from a data sheet's clock and vector widths.
"""

from __future__ import annotations

import time

import torch

SIZE = 2048


def matmul_gflops(dtype: torch.dtype, size: int = SIZE, repeats: int = 5) -> float:
    """Best of `repeats` timed size^3 matmuls, in GFLOP/s (2 x multiply-adds)."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)  # warm-up: threads, kernel choice
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def measured_peak(size: int = SIZE) -> dict[str, float]:
    with torch.inference_mode():
        return {name: round(matmul_gflops(dtype, size), 1) for name, dtype in (("fp32", torch.float32),
                                                                                ("bf16", torch.bfloat16))}
