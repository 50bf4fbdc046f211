"""Print `NAME IMAGE VERSION` of the scoring environment and write its conda file to argv[1].

Everything comes from scoring_job/environment.py (stdlib only, so the hook needs no packages);
VERSION is a hash of image + conda file, so an unchanged environment is never registered twice.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scoring_job.environment import BASE_IMAGE, NAME, conda_specification


def version(image: str, conda: str) -> str:
    return hashlib.sha256(f"{image}\n{conda}".encode()).hexdigest()[:16]


def main(conda_path: str) -> None:
    # JSON is valid YAML: az ml reads the file as a conda YAML.
    conda = json.dumps(conda_specification(), indent=2, sort_keys=True)
    Path(conda_path).write_text(conda + "\n", encoding="utf-8")
    print(NAME, BASE_IMAGE, version(BASE_IMAGE, conda))


if __name__ == "__main__":
    main(sys.argv[1])
