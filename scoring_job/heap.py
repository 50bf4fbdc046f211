"""Keep the memory of freed tensors in the process heap on CPU (glibc), so frames reuse it.

One 1280x720 frame through the network allocates ~350 MB of fresh activations. glibc hands out
blocks of more than 32 MB with `mmap` and unmaps them on `free`, so every frame faults the same
amount of new zero pages in again: 88,000 minor page faults a 720p frame, measured with
`getrusage` while writing this. With `mmap` off, one arena (the pipeline's model thread would
otherwise get its own, which maps its heaps the same way) and a trim threshold of 1 GB, the
pages stay mapped and a frame takes no faults at all: the compiled fp32 model then needs ~20%
less CPU time a frame (bench/scoring.py, docs/scoring-engine.md). The price is that up to 1 GB
freed by the scoring process is kept for its next frame instead of being returned to the system.
Nothing changes in the numbers computed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_ARENA_MAX = -1, -2, -4, -8
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))

_applied = False


def keep_freed_memory() -> bool:
    """Tune glibc malloc once per process; False where there is no glibc (other OS, musl)."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    _applied = all(mallopt(parameter, value) == 1 for parameter, value in SETTINGS)
    if not _applied:
        log.info("glibc refused the malloc settings; frames will fault their activations in")
    return _applied
