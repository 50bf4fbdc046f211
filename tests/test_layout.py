"""Where each dependency runs: the Function App must deploy without torch."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirements(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-r"):
            names.append(line.split("==")[0].split(">=")[0].split("<")[0].strip().lower())
    return names


def test_function_app_requirements_hold_no_torch():
    app = _requirements(ROOT / "requirements.txt")
    assert "torch" not in app and "onnx" not in app and "azure-functions-durable" in app


def test_scoring_environment_pins_torch():
    assert "torch==2.13.0" in (ROOT / "scoring_job" / "requirements.txt").read_text().splitlines()


def test_function_app_imports_as_a_durable_app():
    import azure.durable_functions as df

    import function_app

    assert isinstance(function_app.app, df.DFApp)
