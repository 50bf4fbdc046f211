"""Print `NAME IMAGE VERSION` of a compute package's environment and write its conda file to argv[1].

argv[2] names the package: scoring_job (default; the video scoring job) or forecast_job (many
models). Everything comes from <package>/environment.py (stdlib only, so the hook needs no
packages); VERSION is a hash of image + conda file, so an unchanged environment is never
registered twice.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PACKAGES = ("scoring_job", "forecast_job")


def version(image: str, conda: str) -> str:
    return hashlib.sha256(f"{image}\n{conda}".encode()).hexdigest()[:16]


def main(conda_path: str, package: str = "scoring_job") -> None:
    if package not in PACKAGES:
        raise SystemExit(f"unknown package {package!r}; use one of {', '.join(PACKAGES)}")
    environment = importlib.import_module(f"{package}.environment")
    # JSON is valid YAML: az ml reads the file as a conda YAML.
    conda = json.dumps(environment.conda_specification(), indent=2, sort_keys=True)
    Path(conda_path).write_text(conda + "\n", encoding="utf-8")
    print(environment.NAME, environment.BASE_IMAGE, version(environment.BASE_IMAGE, conda))


if __name__ == "__main__":
    main(*sys.argv[1:3])
