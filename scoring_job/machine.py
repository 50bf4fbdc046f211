"""What kind of CPU this is: the key that per-machine measurements are stored under, and the record
benchmarks write beside their figures.

The project runs on CPUs that differ in what decides its speed and even its numbers: AVX2-only
(Zen 3), AVX-512 with VNNI and BF16 (Zen 4, Ice Lake and later Xeons), AMX (Sapphire Rapids).
A figure measured on one kind says nothing about another, so every stored timing is keyed by the
CPU model, its core count and torch, and every benchmark result names the CPU it came from.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

# The /proc/cpuinfo flags that change which kernels oneDNN, Inductor and ATen run.
RELEVANT_FLAGS = ("avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                  "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The first processor's model (with its family and model numbers: cloud VMs often name only
    "AMD EPYC", the same for Zen 3, 4 and 5) and its flags, from /proc/cpuinfo's text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    model = fields.get("model name", "unknown CPU")
    if "cpu family" in fields and "model" in fields:
        model += f" (family {fields['cpu family']}, model {fields['model']})"
    return model, frozenset(fields.get("flags", "").split())


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return "unknown CPU", frozenset()


def cpu_model() -> str:
    return _cpuinfo()[0]


def relevant_flags() -> list[str]:
    flags = _cpuinfo()[1]
    return [flag for flag in RELEVANT_FLAGS if flag in flags]


def cpu_kind() -> str:
    """CPU model, core count and the flags that pick kernels (two VMs of one model name can differ
    in them), and the ISA cap where one is set (it changes the kernels run)."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return (f"{cpu_model()} | {os.cpu_count()} cpus | {' '.join(relevant_flags()) or 'no vector flags'}"
            + (f" | oneDNN {cap}" if cap else ""))


def machine_key() -> str:
    """The CPU's kind and the torch version: what a stored timing is valid for."""
    import torch

    return f"{cpu_kind()} | torch {torch.__version__}"


def cpu_record() -> dict:
    """The CPU as a benchmark records it: model, cores, the relevant flags it has, and the vector
    level ATen runs at (ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA can cap it below the flags)."""
    import torch

    return {"model": cpu_model(), "cpus": os.cpu_count(), "flags": relevant_flags(),
            "aten_capability": torch.backends.cpu.get_cpu_capability(),
            **{name.lower(): os.environ[name] for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
               if name in os.environ}}
