"""Compile a model into the compile cache in the background, for the jobs after this one.

    python -m scoring_job.compile_warm --cache DIR --style SPEC [--style-root DIR] --device D
        --precision P --batch-size N --height H --width W

A rank whose job is too short to pay for a cold compile, but long enough to pay for loading a
cached one, starts this at the lowest CPU priority (nice 19: it runs on what the ranks leave idle,
and on after them) and carries on eagerly. The next such job loads the compiled model and
compiles, where otherwise no job of its length would ever pay the first compile. Only one warmer
works on a key: a second finds the key's lock taken and leaves. It records no timings: those of
a starved nice-19 process would mislead the next decision.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .compile_cache import CompileCache
from .compile_choice import compile_key, compile_through_cache
from .engine import Stylizer, choose_device
from .style_spec import parse_style

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--style", required=True)
    parser.add_argument("--style-root", type=Path)
    parser.add_argument("--device", required=True)
    parser.add_argument("--precision", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--width", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s compile_warm %(message)s")
    os.nice(19)
    stylizer = Stylizer(parse_style(args.style), choose_device(args.device, args.batch_size, args.precision),
                        style_root=args.style_root)
    cache = CompileCache(args.cache)
    key = compile_key(stylizer, args.height, args.width)
    batch = np.zeros((args.batch_size, args.height, args.width, 3), np.uint8)
    if cache.has_artifacts(key) or not compile_through_cache(stylizer, key, batch, cache, wait=False, measure=False):
        log.info("key %s is cached or being compiled already", key.digest)
        return 0
    log.info("key %s compiled into %s", key.digest, args.cache)
    return 0


if __name__ == "__main__":
    sys.exit(main())
