"""The edge-case clips are what they claim, and the stream comparator passes faithful copies and names losses.

These tests pin the measuring stick used for the lossless media path: if compare() could not fail on a
shifted track or a dropped subtitle, a green end-to-end test would prove nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import pytest
from media_clips import (
    ATTACHMENT_DATA,
    ATTACHMENT_MIMETYPE,
    ATTACHMENT_NAME,
    AUDIO_OFFSET,
    CHAPTERS,
    CLIPS,
    CONTAINER_KINDS,
    CONTAINER_TITLE,
    EDGE_KINDS,
    EVERYTHING_AUDIO2_OFFSET,
    SUBTITLE_CUES,
    _ffmetadata,
    run_ffmpeg,
    vfr_frame_times_ms,
)
from stream_inventory import Inventory, compare, inventory, split_conversions

Clip = Callable[[str], Path]
CUE_STARTS = [start for start, _, _ in SUBTITLE_CUES]


def close(a: float | None, b: float, tolerance: float = 0.001) -> bool:
    return a is not None and abs(a - b) <= tolerance


def codecs(inv: Inventory, kind: str) -> list[str | None]:
    return [s.codec for s in inv.of_type(kind)]


# --- each clip is what it claims --------------------------------------------------------------------

CONTAINER_EXPECTED = {  # kind: (demuxer, video codec, audio codec)
    "container_ts": ("mpegts", "h264", "aac"), "container_m2ts": ("mpegts", "h264", "ac3"),
    "container_mts": ("mpegts", "h264", "ac3"), "container_mpg": ("mpeg", "mpeg2video", "mp2"),
    "container_flv": ("flv", "h264", "aac"), "container_wmv": ("asf", "wmv2", "wmav2"),
    "container_3gp": ("mov,mp4,m4a,3gp,3g2,mj2", "h264", "aac"), "container_webm": ("matroska,webm", "vp9", "opus"),
    "container_avi": ("avi", "mpeg4", "mp3"),
}


@pytest.mark.parametrize("kind", CONTAINER_KINDS)
def test_container_clips_are_what_their_extension_says(media_clip: Clip, kind: str) -> None:
    path = media_clip(kind)
    inv = inventory(path)
    fmt, video, audio = CONTAINER_EXPECTED[kind]
    assert (path.suffix, inv.format_name, codecs(inv, "video"), codecs(inv, "audio")) == \
        (f".{kind.removeprefix('container_')}", fmt, [video], [audio])
    assert len(inv.of_type("video")[0].frame_times) == 25
    if kind in ("container_m2ts", "container_mts"):
        assert path.stat().st_size % 192 == 0 and path.read_bytes()[4] == 0x47  # 4-byte timecode, then TS sync


def test_non_videos(media_clip: Clip) -> None:
    audio_only = inventory(media_clip("not_video_m4a"))
    assert (codecs(audio_only, "video"), codecs(audio_only, "audio")) == ([], ["aac"])
    # content detection alone does NOT reject this one: ffmpeg demuxes a PNG as a 1-frame video stream
    png = inventory(media_clip("not_video_png_ts"))
    assert (png.format_name, codecs(png, "video"), len(png.of_type("video")[0].frame_times)) == ("png_pipe", ["png"], 1)
    for kind in ("not_video_random_mts", "not_video_text_mpg"):
        with pytest.raises(av.error.InvalidDataError):
            av.open(str(media_clip(kind))).close()


def test_offset_audio_starts_late_through_an_edit_list(media_clip: Clip) -> None:
    inv = inventory(media_clip("offset_audio"))
    video, audio = inv.of_type("video")[0], inv.of_type("audio")[0]
    assert video.frame_times[0] == 0 and close(audio.start_time, AUDIO_OFFSET)
    # the AAC priming packet sits before the offset and is trimmed by the edit list, not shown
    assert audio.discarded == 1 and close(audio.packet_pts[0], AUDIO_OFFSET - 1024 / 48000)
    assert close(audio.packet_pts[1], AUDIO_OFFSET)


def test_offset_video_starts_late(media_clip: Clip) -> None:
    inv = inventory(media_clip("offset_video"))
    assert close(inv.of_type("video")[0].frame_times[0], AUDIO_OFFSET)
    assert inv.of_type("audio")[0].start_time == 0


def test_two_audio_tracks_of_different_codecs(media_clip: Clip) -> None:
    inv = inventory(media_clip("two_audio"))
    tracks = [(s.codec, s.language, s.title, "default" in s.disposition) for s in inv.of_type("audio")]
    assert tracks == [("aac", "eng", "English stereo", True), ("ac3", "fra", "Français AC-3", False)]


def test_text_subtitles(media_clip: Clip) -> None:
    mp4 = inventory(media_clip("text_subs_mp4"))
    [mov_text] = mp4.of_type("subtitle")
    assert (mov_text.codec, mov_text.language, mov_text.title) == ("mov_text", "eng", "English")
    assert list(mov_text.cue_times()) == pytest.approx(CUE_STARTS, abs=0.001)
    mkv = inventory(media_clip("text_subs_mkv"))
    assert [(s.codec, s.language, s.cue_times()) for s in mkv.of_type("subtitle")] == \
        [("subrip", "eng", pytest.approx(CUE_STARTS)), ("ass", "fra", pytest.approx(CUE_STARTS))]


@pytest.mark.parametrize("kind", ["bitmap_subs_mkv", "bitmap_subs_mp4"])
def test_bitmap_subtitles_decode_to_bitmaps(media_clip: Clip, kind: str) -> None:
    path = media_clip(kind)
    [subs] = inventory(path).of_type("subtitle")
    assert (subs.codec, subs.language, subs.cue_times()) == ("dvd_subtitle", "eng", pytest.approx(CUE_STARTS))
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        rects = [rect for packet in container.demux(stream) if packet.size for rect in packet.decode()]
    assert [(r.type, r.width, r.height) for r in rects] == [(b"bitmap", 28, 8)] * 3


@pytest.mark.parametrize("kind", ["chapters_mp4", "chapters_mkv"])
def test_chapters(media_clip: Clip, kind: str) -> None:
    inv = inventory(media_clip(kind))
    assert [(c.start, c.end, c.title) for c in inv.chapters] == \
        [(pytest.approx(a, abs=1e-3), pytest.approx(b, abs=1e-3), title) for a, b, title in CHAPTERS]
    assert inv.metadata["title"] == CONTAINER_TITLE


def test_vfr_gaps(media_clip: Clip) -> None:
    inv = inventory(media_clip("vfr_gaps"))
    times = inv.of_type("video")[0].frame_times
    assert list(times) == pytest.approx([t / 1000 for t in vfr_frame_times_ms()], abs=1e-6)
    steps = {round(b - a, 3) for a, b in pairwise(times)}
    assert max(steps) > 1.5 and len(steps) >= 4  # a long hole and several different frame durations
    assert inv.of_type("audio")[0].packet_pts[-1] > 3.9


def test_attachment(media_clip: Clip) -> None:
    inv = inventory(media_clip("attachment"))
    [attachment] = inv.attachments
    assert (attachment.filename, attachment.mimetype, attachment.size) == \
        (ATTACHMENT_NAME, ATTACHMENT_MIMETYPE, len(ATTACHMENT_DATA))
    assert inv.metadata["title"] == CONTAINER_TITLE and inv.format_name == "matroska,webm"


def test_pcm_mov(media_clip: Clip) -> None:
    inv = inventory(media_clip("pcm_mov"))
    assert (media_clip("pcm_mov").suffix, codecs(inv, "audio")) == (".mov", ["pcm_s16le"])


def test_everything_mkv(media_clip: Clip) -> None:
    inv = inventory(media_clip("everything_mkv"))
    assert [(s.codec, s.language, s.title) for s in inv.of_type("audio")] == \
        [("aac", "eng", "English"), ("mp3", "fra", "Commentaire")]
    assert close(inv.of_type("audio")[1].start_time, EVERYTHING_AUDIO2_OFFSET)
    assert [(s.codec, s.language) for s in inv.of_type("subtitle")] == [("subrip", "eng"), ("ass", "fra")]
    assert "forced" in inv.of_type("subtitle")[1].disposition
    assert (len(inv.chapters), len(inv.attachments), inv.metadata["title"]) == (3, 1, CONTAINER_TITLE)


# --- a faithful copy compares clean ---------------------------------------------------------------

def remux(src: Path, out: Path, *args: str) -> Path:
    run_ffmpeg("-i", src, *(args or ("-map", "0")), "-c", "copy", "-map_chapters", "0", "-map_metadata", "0", out)
    return out


# What ffmpeg's own `-map 0 -c copy` does NOT keep, as compare() words it (one substring per problem).
FFMPEG_REMUX_LOSSES: dict[str, list[str]] = {
    # the MP4 muxer cannot write an empty edit plus a priming trim: it presents the priming frame instead
    "offset_audio": ["audio #1 (aac): starts 0.437000 s after the video in source, 0.415667 s in output"],
    # the MP4 demuxer reads a track title back as tag "name", which the MP4 muxer does not write as a title
    "two_audio": ["title 'English stereo' in source, None in output", "title 'Français AC-3' in source, None"],
    "text_subs_mp4": ["title 'English' in source, None in output"],
    "bitmap_subs_mp4": ["title 'DVD bitmap' in source, None in output"],
}


def same_family(path: Path) -> str:
    return ".mp4" if path.suffix == ".mp4" else ".mkv"


@pytest.mark.parametrize("kind", EDGE_KINDS + CONTAINER_KINDS)
def test_stream_copy_remux_compares_clean(media_clip: Clip, tmp_path: Path, kind: str) -> None:
    src = media_clip(kind)
    out = remux(src, tmp_path / f"copy{same_family(src)}")
    # MPEG-TS/PS/FLV/ASF start their clocks anywhere; the copy restarts at 0, so only relative times count
    problems = compare(src, out, absolute=kind not in CONTAINER_KINDS)
    expected = FFMPEG_REMUX_LOSSES.get(kind, [])
    assert len(problems) == len(expected) and all(e in p for e, p in zip(expected, problems, strict=True)), problems


@pytest.mark.parametrize("kind", ["offset_audio", "offset_video", "two_audio", "bitmap_subs_mp4", "chapters_mp4",
                                  "vfr_gaps"])
def test_mp4_sources_copied_into_matroska_compare_clean(media_clip: Clip, tmp_path: Path, kind: str) -> None:
    """The fallback output (Matroska) keeps everything, titles included; the QuickTime chapter track is
    a data stream that Matroska cannot hold, and chapters travel as chapters."""
    src = media_clip(kind)
    assert compare(src, remux(src, tmp_path / "copy.mkv", "-map", "0", "-map", "-0:d?")) == []


def test_conversions_are_reported_apart(media_clip: Clip, tmp_path: Path) -> None:
    pcm = media_clip("pcm_mov")
    out = tmp_path / "pcm.mp4"
    run_ffmpeg("-i", pcm, "-map", "0", "-c:v", "copy", "-c:a", "aac", out)
    assert split_conversions(compare(pcm, out)) == ([], ["converted audio #1 (pcm_s16le): pcm_s16le->aac"])
    text = media_clip("text_subs_mkv")
    out = tmp_path / "text.mp4"
    run_ffmpeg("-i", text, "-map", "0", "-c:v", "copy", "-c:a", "copy", "-c:s", "mov_text", "-map_metadata", "0", out)
    problems, conversions = split_conversions(compare(text, out))
    assert problems == []  # cue times, languages and titles survive the conversion
    assert [c.split(": ")[-1] for c in conversions] == ["subrip->mov_text", "ass->mov_text"]


# --- broken copies are caught, one clear line each ---------------------------------------------------

def shifted_audio(src: Path, out: Path) -> None:
    run_ffmpeg("-i", src, "-itsoffset", "0.005", "-i", src, "-map", "0:v", "-map", "1:a:0", "-map", "0:a:1?",
               "-map", "0:s?", "-map", "0:t?", "-c", "copy", "-map_chapters", "0", "-map_metadata", "0", out)


def moved_frame(src: Path, out: Path, frame: int = 30, by: Fraction = Fraction(20, 1000)) -> None:
    """Copy every packet with PyAV, displaying one video frame 20 ms later."""
    # ffmpeg's CLI lets Matroska keep the AAC priming packet before 0; libavformat's default would shift all
    with av.open(str(src)) as inp, av.open(str(out), "w", container_options={"avoid_negative_ts": "disabled"}) as dst:
        target = sorted(p.pts for p in inp.demux(inp.streams.video[0]) if p.size)[frame]
        inp.seek(0)
        mapping = {s.index: dst.add_stream_from_template(s, disposition=s.disposition)
                   for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(*(inp.streams[i] for i in mapping)):
            if packet.dts is None and packet.size == 0:
                continue
            if packet.stream.type == "video" and packet.pts == target:
                packet.pts += round(by / packet.time_base)
            packet.stream = mapping[packet.stream_index]
            dst.mux(packet)


def dropped_chapter(src: Path, out: Path) -> None:
    meta = out.with_suffix(".txt")
    meta.write_text(_ffmetadata(CHAPTERS[:2]), encoding="utf-8")
    run_ffmpeg("-i", src, "-i", meta, "-map", "0", "-c", "copy", "-map_metadata", "0", "-map_chapters", "1", out)


def reencoded_audio(src: Path, out: Path) -> None:
    run_ffmpeg("-i", src, "-map", "0", "-c", "copy", "-c:a:0", "aac", "-map_metadata", "0", out)


BROKEN: dict[str, tuple[str, str, Callable[[Path, Path], None], list[str]]] = {
    # case: (clip kind, output extension, breaker, substrings of the one problem expected)
    "audio 5 ms late (mkv)": ("everything_mkv", ".mkv", shifted_audio,
                              ["audio #1 (eng, 'English', aac): packet times: 95 of 95 moved, first #0: "
                               "-0.021 s in source, -0.016 s in output (+5.0 ms)"]),
    "audio 5 ms late (mp4)": ("vfr_gaps", ".mp4", shifted_audio,
                              # the copy trims 784 instead of 1024 priming samples, so it still starts at
                              # 0: only the packet times show the shift
                              ["audio #1 (aac): packet times: 189 of 189 moved, first #0: -0.02133", "(+5.0 ms)"]),
    "subtitle dropped": ("text_subs_mkv", ".mkv",
                         lambda s, o: remux(s, o, "-map", "0", "-map", "-0:s:1"),
                         ["subtitle #3 (fra, 'Français ASS', ass): missing in output"]),
    "frame moved": ("vfr_gaps", ".mkv", moved_frame,
                    ["video #0 (h264): frame times: 1 of 40 moved, first #30: 2.96 s in source, 2.98 s in output "
                     "(+20.0 ms)"]),
    "chapter missing": ("chapters_mkv", ".mkv", dropped_chapter,
                        ["chapters: 3 in source (['Opening', 'Middle part', 'Finale']), 2 in output "
                         "(['Opening', 'Middle part'])"]),
    "attachment dropped": ("everything_mkv", ".mkv", lambda s, o: remux(s, o, "-map", "0", "-map", "-0:t"),
                           ["attachment 'restyle-test.ttf' (application/x-truetype-font): missing in output"]),
    "audio re-encoded": ("everything_mkv", ".mkv", reencoded_audio,
                         ["audio #1 (eng, 'English', aac): packets differ (md5 "]),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_copies_are_reported(media_clip: Clip, tmp_path: Path, case: str) -> None:
    kind, ext, breaker, expected = BROKEN[case]
    src = media_clip(kind)
    out = tmp_path / f"broken{ext}"
    breaker(src, out)
    problems = compare(src, out)
    text = "\n".join(problems)
    assert all(e in text for e in expected), problems
    assert len(problems) == 1, problems


@pytest.mark.parametrize("kind", EDGE_KINDS)
def test_edge_clips_have_video_and_audio(media_clip: Clip, kind: str) -> None:
    inv = inventory(media_clip(kind))
    assert CLIPS[kind][1] and codecs(inv, "video") == ["h264"] and inv.of_type("audio")
