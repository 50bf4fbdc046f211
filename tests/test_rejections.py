"""Bad uploads each get their specific reason and land in rejected/, never lost."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import run_ffmpeg
from PIL import Image

from activities.media.probe_input import probe_input
from activities.rejection import rejected_name
from restyle.blob_names import UnsafeBlobName, safe_blob_name


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _assert_rejected(store, name: str, original: bytes, result: dict, reason: str) -> None:
    settings = store.settings
    assert result["accepted"] is False and reason in result["reason"]
    assert not store.exists(settings.input_container, name)
    target = rejected_name(name)
    assert result["rejected_blob"] == f"{settings.rejected_container}/{target}"
    copy = store.download_file(settings.rejected_container, target, settings.temp_root / "check")
    assert _sha(copy.read_bytes()) == _sha(original)
    record = store.read_json(settings.rejected_container, f"{target}.reason.json")
    assert record["blob"] == name and reason in record["reason"] and record["rejected_at"]


def _bad_file(kind: str, folder: Path, make_clip) -> bytes:
    if kind == "zero bytes":
        return b""
    if kind == "truncated mp4":
        return make_clip(frames=48).read_bytes()[:4000]
    if kind == "text named .mp4":
        return b"Dear team, the video is attached.\n" * 20
    if kind == "image named .mp4":
        Image.new("RGB", (320, 240), "blue").save(folder / "photo.png")
        return (folder / "photo.png").read_bytes()
    if kind == "audio only":
        run_ffmpeg("-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", str(folder / "a.mp4"))
        return (folder / "a.mp4").read_bytes()
    raise ValueError(kind)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("zero bytes", "empty file"), ("truncated mp4", "not a readable video"),
     ("text named .mp4", "not a readable video"), ("image named .mp4", "still image"),
     ("audio only", "audio only")],
)
def test_bad_files_are_rejected_with_their_reason(kind, reason, store, make_clip, tmp_path):
    data = _bad_file(kind, tmp_path, make_clip)
    name = f"uploads/{kind}.mp4"
    (tmp_path / "upload").write_bytes(data)
    store.upload_file(store.settings.input_container, name, tmp_path / "upload")
    _assert_rejected(store, name, data, probe_input(store, name, "job"), reason)


@pytest.mark.parametrize(
    ("limit", "value", "reason"),
    [("max_bytes", 1000, "the limit is 1000"), ("max_duration_seconds", 0.5, "the limit is 0 s"),
     ("max_pixels", 160 * 96 - 1, "exceed the limit")],
)
def test_each_limit_rejects_with_the_numbers(limit, value, reason, settings, make_clip, tmp_path):
    from restyle.storage import BlobStore

    store = BlobStore.from_settings(settings.model_copy(update={limit: value}))
    store.ensure_containers()
    clip = make_clip(frames=24, size="160x96")
    store.upload_file(store.settings.input_container, "big.mp4", clip)
    result = probe_input(store, "big.mp4", "job")
    _assert_rejected(store, "big.mp4", clip.read_bytes(), result, reason)
    if limit != "max_bytes":
        record = store.read_json(store.settings.rejected_container, "big.mp4.reason.json")
        assert record["facts"]["frame_count"] == 24


@pytest.mark.parametrize("name", ["Ünïcødé clip.mp4", "folder with spaces/sub/vidéo 1.mp4", "日本語.mp4"])
def test_spaces_and_non_ascii_names_are_fine(name):
    assert safe_blob_name(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [("", "empty"), ("../etc/passwd", "'..' segment"), ("a/./b.mp4", "'..' segment"), ("/abs.mp4", "absolute"),
     ("a//b.mp4", "empty"), ("bad\x01name.mp4", "control"), ("new\nline.mp4", "control"),
     ("back\\slash.mp4", "backslash"), (" padded.mp4", "white space"), ("x" * 1100, "longer than")],
)
def test_unsafe_names_are_refused_with_the_problem(name, problem):
    with pytest.raises(UnsafeBlobName, match=problem):
        safe_blob_name(name)


def test_rejected_copies_of_unsafe_names_stay_inside_the_container():
    assert rejected_name("../../escape.mp4") == "_/_/escape.mp4"
    assert rejected_name("/abs//x\x00.mp4") == "abs/x_.mp4"
    assert rejected_name("a/../b\\c.mp4") == "a/_/b/c.mp4"
    assert rejected_name("") == "unnamed"


@pytest.mark.parametrize(
    ("style", "reason"),
    [("26", "out of range"), ("sunset", "bad style spec"), ("missing.jpg", "does not exist"),
     ("corrupt.jpg", "not a readable picture"), ("../up.png", "style image name")],
)
def test_a_style_that_cannot_be_used_rejects_the_upload(style, reason, store, make_clip, tmp_path):
    """Unknown built-in, malformed spec, missing / corrupt / unsafely named style image."""
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    store.upload_file(store.settings.styles_container, "corrupt.jpg", tmp_path / "corrupt.jpg")
    clip = make_clip(frames=12)
    store.upload_file(store.settings.input_container, "clip.mp4", clip)
    result = probe_input(store, "clip.mp4", "job", style)
    _assert_rejected(store, "clip.mp4", clip.read_bytes(), result, reason)


def test_a_readable_style_image_is_accepted_and_normalised(store, make_clip, tmp_path):
    Image.new("RGB", (64, 48), "orange").save(tmp_path / "paint.png")
    store.upload_file(store.settings.styles_container, "paint.png", tmp_path / "paint.png")
    store.upload_file(store.settings.input_container, "clip.mp4", make_clip(frames=12))
    assert probe_input(store, "clip.mp4", "job", " paint.png")["style"] == "paint.png"
    assert probe_input(store, "clip.mp4", "job2", " 3:1,12:1 ")["style"] == "3:1,12:1"


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"scale": 2}, "scale: Input should be less than or equal to 1"), ({"speed": "max"}, "speed: Extra inputs"),
     ({"preset": "instant"}, "preset: Input should be"), (["scale"], "must be a JSON object"),
     ({"stability": -0.1}, "stability: Input should be greater than or equal to 0")],
)
def test_options_that_cannot_be_used_reject_the_upload(options, reason, store, make_clip):
    clip = make_clip(frames=12)
    store.upload_file(store.settings.input_container, "clip.mp4", clip)
    _assert_rejected(store, "clip.mp4", clip.read_bytes(), probe_input(store, "clip.mp4", "job", "19", options), reason)
