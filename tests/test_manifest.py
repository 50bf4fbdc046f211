import json

import pytest

from scoring_job.manifest import DEFAULT_STABILITY, Manifest, ManifestError, Segment


def _manifest(**overrides) -> dict:
    data = {
        "schema_version": 1, "job_id": "job-1", "fps": "25/1", "style": "19",
        "segments": [{"index": 0, "path": "segments/a.mp4", "frames": 50},
                     {"index": 1, "path": "segments/b.mp4", "frames": 82}],
    }
    data.update(overrides)
    return data


def test_round_trip_through_a_folder(tmp_path):
    manifest = Manifest.model_validate(_manifest(options={"crf": 20, "scale": 0.5}))
    manifest.save(tmp_path)
    loaded = Manifest.load(tmp_path)
    assert loaded == manifest
    assert loaded.total_frames == 132
    assert loaded.options.crf == 20 and loaded.options.preset == "veryfast"
    assert loaded.options.stability == DEFAULT_STABILITY  # on unless a job turns it off with 0
    assert [s.name for s in loaded.segments] == ["segment_00000", "segment_00001"]
    assert not list(tmp_path.glob("*.partial"))


def test_unknown_schema_version_is_refused_not_misread():
    with pytest.raises(ManifestError, match=r"schema_version 2"):
        Manifest.from_json(json.dumps(_manifest(schema_version=2)))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"segments": []}, "segments"),
     ({"segments": [{"index": 0, "path": "../escape.mp4", "frames": 1}]}, "relative path"),
     ({"segments": [{"index": 0, "path": "/abs.mp4", "frames": 1}]}, "relative path"),
     ({"segments": [{"index": 0, "path": "a.mp4", "frames": 1}, {"index": 0, "path": "b.mp4", "frames": 1}]},
      "unique"),
     ({"style": "27"}, "out of range"),
     ({"style": "../../etc/painting.jpg"}, "relative path"),
     ({"fps": "25.0"}, "fps"),
     ({"options": {"crf": 99}}, "crf"),
     ({"options": {"quality": 49}}, r"options\.quality: Input should be greater than or equal to 50"),
     ({"options": {"quality": 100.5}}, r"options\.quality: Input should be less than or equal to 100"),
     ({"options": {"crf": 20, "quality": 96}}, r"options\.quality: Value error, set crf or quality, not both"),
     ({"options": {"stability": 1.01}}, r"options\.stability: Input should be less than or equal to 1"),
     ({"surprise": 1}, "surprise")],
)
def test_invalid_manifests_say_what_is_wrong(overrides, message):
    with pytest.raises(ManifestError, match=message):
        Manifest.from_json(json.dumps(_manifest(**overrides)))


def test_quality_target_defaults_to_vmaf_95_and_crf_turns_the_search_off():
    from scoring_job.manifest import DEFAULT_QUALITY, ScoringOptions

    assert ScoringOptions().quality_target == DEFAULT_QUALITY == 95
    assert ScoringOptions(quality=90).quality_target == 90
    assert ScoringOptions(crf=18).quality_target is None


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        Manifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(tmp_path)


def test_manifest_module_is_torch_free():
    import subprocess
    import sys

    code = "import sys, scoring_job.manifest, scoring_job.style_spec, scoring_job.probe; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_segment_names_are_stable():
    assert Segment(index=7, path="s.mp4", frames=3).name == "segment_00007"
