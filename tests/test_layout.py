"""Where each dependency runs: the Function App must deploy without torch."""

from pathlib import Path

from app_index import app_functions

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


def test_opencv_belongs_to_the_scoring_job_only():
    """The temporal filter's optical flow runs in the scoring job; the Function App never imports cv2."""
    assert "opencv-python-headless" in _requirements(ROOT / "scoring_job" / "requirements.txt")
    assert "opencv-python-headless" not in _requirements(ROOT / "requirements.txt")


def test_function_app_registers_the_orchestrator_activities_trigger_and_api():
    import azure.durable_functions as df

    import function_app

    assert isinstance(function_app.app, df.DFApp)
    functions = app_functions()
    activities = {"probe", "split", "stitch", "cleanup", "write_manifest", "submit_compute",
                  "compute_status", "cancel_compute", "cancel_job_compute", "validate_table_upload",
                  "collect_run_results"}
    http = {"create_job": ("POST", "jobs"), "read_job": ("GET", "jobs/{instance_id}"), "read_jobs": ("GET", "jobs"),
            "delete_job": ("DELETE", "jobs/{instance_id}"), "forecast": ("POST", "forecast"),
            "read_job_downloads": ("GET", "jobs/{instance_id}/downloads"), "create_upload": ("POST", "uploads"),
            "read_job_partitions": ("GET", "jobs/{instance_id}/partitions"),
            "read_job_forecast": ("GET", "jobs/{instance_id}/forecast"), "jobs_page": ("GET", "page"),
            "read_me": ("GET", "me")}
    assert set(functions) == activities | set(http) | {"stylize_video", "many_models", "remove_work",
                                                       "on_video_uploaded", "on_table_uploaded"}
    for name in activities:
        assert functions[name].get_trigger().type == "activityTrigger"
    assert {functions[name].get_trigger().type for name in ("stylize_video", "many_models", "remove_work")} == {
        "orchestrationTrigger"}
    for name, (method, route) in http.items():
        trigger = functions[name].get_trigger()
        assert (trigger.type, [str(m) for m in trigger.methods], trigger.route) == ("httpTrigger", [method], route)
        # the app decides who may call (api/callers.py): the host's key check would refuse signed-in people
        assert trigger.auth_level.value == "anonymous"
    for trigger, container in (("on_video_uploaded", "input"), ("on_table_uploaded", "tables")):
        blob = functions[trigger].get_trigger().get_dict_repr()
        assert (blob["path"], blob["connection"], blob["source"]) == (
            f"{container}/{{name}}", "RestyleData", "LogsAndContainerScan")


def test_media_activity_wrappers_call_the_plain_functions(settings, store, make_clip, monkeypatch):
    """The Durable wrapper for probe, called as the worker calls it, against real Azurite."""
    from activities import blueprint

    monkeypatch.setattr(blueprint, "app_store", lambda: store)
    store.upload_file(settings.input_container, "clip.mp4", make_clip(frames=12))
    result = app_functions()["probe"].get_user_function()({"blob": "clip.mp4", "job_id": "j1"})
    assert result["accepted"] and result["video"]["frame_count"] == 12


def test_the_function_app_imports_without_torch():
    """The Functions host installs requirements.txt only: nothing it imports may need torch."""
    import subprocess
    import sys

    code = "import sys, function_app; print(sorted(m for m in ('torch', 'onnx') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"


def test_the_deployment_package_leaves_out_what_the_host_does_not_run():
    ignored = {line.strip() for line in (ROOT / ".funcignore").read_text().splitlines() if line.strip()}
    assert {"tests", "bench", "devhost", "infra", "node_modules"} <= ignored
    assert "scoring_job" not in ignored and "activities" not in ignored
