"""extract_audio: the first audio track by stream copy, with its md5 for the final check."""

from __future__ import annotations

from restyle.storage import BlobStore
from restyle.tempfiles import scratch_dir
from scoring_job.probe import probe_video

from .media_ops import audio_md5, extract_audio
from .work_layout import WorkLayout


def extract_audio_track(store: BlobStore, blob_name: str, job_id: str) -> dict:
    """No audio is not an error: the result says so and the output will be silent."""
    settings = store.settings
    with scratch_dir(settings.temp_root, "audio-") as scratch:
        source = store.download_file(settings.input_container, blob_name, scratch / "source")
        info = probe_video(source)
        if not info.has_audio:
            return {"has_audio": False}
        track = scratch / "audio.mka"
        extract_audio(source, track)
        blob = WorkLayout(job_id).audio
        store.upload_file(settings.work_container, blob, track)
        return {"has_audio": True, "codec": info.audio_codec, "md5": audio_md5(source), "blob": blob}
