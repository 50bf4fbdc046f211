"""The Azure ML scoring environment, defined next to the code it runs (torch-free, no Azure imports).

Base: Azure ML's Open MPI + CUDA image (Azure ML's MpiDistribution needs MPI in the image). Python
packages: exactly scoring_job/requirements.txt — torch==2.13.0 resolves to its CUDA build there,
and ffmpeg comes from the imageio-ffmpeg wheel, so no apt step is needed.
"""

from __future__ import annotations

from pathlib import Path

NAME = "restyle-scoring"
BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04:latest"
PYTHON_VERSION = "3.11"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")


def pip_requirements() -> list[str]:
    lines = (line.split("#")[0].strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def conda_specification() -> dict:
    """The conda file Azure ML builds the image layer from."""
    return {
        "name": NAME,
        "channels": ["conda-forge"],
        "dependencies": [f"python={PYTHON_VERSION}", "pip", {"pip": pip_requirements()}],
    }
