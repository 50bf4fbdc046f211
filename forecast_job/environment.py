"""The Azure ML environment of the many-models job, next to the code it runs (no Azure imports).

Base: Azure ML's CPU image (statistical models need no GPU). Python packages: forecast_job/
requirements.txt plus what only Azure ML needs: `mltable` (the parallel job reads the bucketed
table through it) and `azureml-inference-server-http` (the online endpoint's server, online.py).
"""

from __future__ import annotations

from pathlib import Path

NAME = "restyle-forecast"
BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
PYTHON_VERSION = "3.11"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
AZURE_ONLY = ("mltable>=1.6,<2", "azureml-inference-server-http>=1.3,<2")


def pip_requirements() -> list[str]:
    lines = (line.split("#")[0].strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line] + list(AZURE_ONLY)


def conda_specification() -> dict:
    return {
        "name": NAME,
        "channels": ["conda-forge"],
        "dependencies": [f"python={PYTHON_VERSION}", "pip", {"pip": pip_requirements()}],
    }
