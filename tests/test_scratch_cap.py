"""A 1 GB upload goes through probe, split and stitch with local scratch capped at 200 MB.

Flex Consumption gives an instance about 0.8 GB of temporary disk for everything running on it;
the media activities stream through blobs instead, so their scratch use does not grow with the
upload. The cap is devhost's own meter (devhost/scratch.py), which fails whatever is running the
moment scratch passes it, as a full disk would.
"""

from __future__ import annotations

import pytest
from media_clips import run_ffmpeg

from activities.media.probe_input import probe_input
from activities.media.split import split_unit
from activities.media.stitch import stitch_output
from activities.work_layout import WorkLayout
from devhost.scratch import ScratchMeter

CAP_BYTES = 200 * 2**20


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> tuple:
    """>= 1 GB of 1080p video with audio, made in seconds: a short incompressible (noise) clip
    encoded losslessly, then repeated by stream copy."""
    folder = tmp_path_factory.mktemp("big")
    piece, listing, big = folder / "piece.mp4", folder / "list.txt", folder / "big.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25,noise=alls=60:allf=t", "-f", "lavfi",
               "-i", "sine=frequency=500:sample_rate=48000", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast",
               "-qp", "0", "-g", "25", "-c:a", "aac", piece)
    copies = -(-2**30 // piece.stat().st_size)
    listing.write_text(f"file '{piece}'\n" * copies)
    run_ffmpeg("-f", "concat", "-safe", "0", "-i", listing, "-c", "copy", "-movflags", "+faststart", big)
    assert big.stat().st_size >= 2**30
    return big, copies * 50


def test_a_1_gb_upload_passes_under_a_200_mb_scratch_cap(store, big_source):
    source, frames = big_source
    settings = store.settings
    store.upload_file(settings.input_container, "big.mp4", source)
    store.traffic.reset()
    full: list[OSError] = []
    meter = ScratchMeter(settings.temp_root, CAP_BYTES, interval=0.02, on_exceeded=full.append).start()
    try:
        with meter.running():
            probed = probe_input(store, "big.mp4", "big")
            assert probed["accepted"] and probed["video"]["frame_count"] == frames
            probe_bytes = store.traffic.bytes_down
            for first, last in probed["units"]:
                split_unit(store, "big.mp4", probed["etag"], "big", first, last)
            layout = WorkLayout("big")
            for index in range(probed["segment_count"]):  # the scoring job's stand-in
                store.copy(settings.work_container, layout.segment(index), settings.work_container,
                           layout.styled(index))
            stitched = stitch_output(store, "big.mp4", probed["etag"], "big")
    finally:
        meter.stop()
    assert full == []
    assert meter.peak_bytes < CAP_BYTES
    # the index of a 1 GB MP4 and the first frames ffmpeg decodes to know the stream (3 MB each
    # here: lossless noise), not the video (bench/media.py measures it on ordinary video)
    assert probe_bytes < 16 * 2**20
    assert stitched["frames"] == frames and stitched["format"] == "mp4"
    video, audio = stitched["streams"]
    assert (video["action"], video["packets"]) == ("styled", frames)
    assert audio["action"] == "kept" and audio["packets"] > 0
    output = store.info(settings.output_container, "big.styled.mp4")
    assert output.size > 2**30 * 0.9
