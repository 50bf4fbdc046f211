"""Edge-case media clips that the lossless media path must carry through untouched.

Every clip is tiny (160x96, 2-4 s) and made with the bundled ffmpeg (lavfi sources) or PyAV, so the
whole set builds in seconds. `make_clip(kind, folder)` builds one kind (cached on disk in `folder`);
`CLIPS` names every kind with a one-line description of what it contains.
"""

from __future__ import annotations

import random
import struct
import subprocess
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av

from scoring_job.ffmpeg_binary import ffmpeg_binary

SIZE = "160x96"
AUDIO_OFFSET = 0.437
"""Seconds by which the late stream of `offset_audio`/`offset_video` starts (not a frame multiple)."""
AAC_PRIMING = 1024
"""Samples of encoder delay that ffmpeg's AAC encoder puts in front (skipped via the MP4 edit list)."""
EVERYTHING_AUDIO2_OFFSET = 0.25
"""Seconds by which the second (MP3) audio track of `everything_mkv` starts late."""

CHAPTERS: tuple[tuple[float, float, str], ...] = ((0.0, 0.7, "Opening"), (0.7, 1.4, "Middle part"),
                                                  (1.4, 2.0, "Finale"))
SUBTITLE_CUES: tuple[tuple[float, float, str], ...] = ((0.2, 0.9, "Hello there"), (1.0, 1.5, "Second line"),
                                                       (1.6, 1.9, "Bye"))
ATTACHMENT_NAME = "restyle-test.ttf"
ATTACHMENT_MIMETYPE = "application/x-truetype-font"
ATTACHMENT_DATA = b"\x00\x01\x00\x00" + bytes(range(256)) * 4  # a TrueType magic, then filler
CONTAINER_TITLE = "Restyle edge case"


def vfr_frame_times_ms() -> list[int]:
    """Presentation times of `vfr_gaps`: 25 fps for 1 s, a 1.5 s hole, then ~10 fps with 7 ms jitter."""
    return [n * 40 if n < 25 else 2460 + (n - 25) * 100 + 7 * (n % 3) for n in range(40)]


_VFR_SETPTS = "if(lt(N,25),N*40,2460+(N-25)*100+7*mod(N,3))"  # in TB units: settb=1/1000 comes first


def run_ffmpeg(*args: str | Path) -> None:
    subprocess.run([ffmpeg_binary(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)],
                   check=True)


def _video_input(seconds: float = 2, rate: int = 25) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={SIZE}:rate={rate}:duration={seconds}"]


def _audio_input(seconds: float = 2, frequency: int = 440, rate: int = 48000) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate={rate}:duration={seconds}"]


# x264 with B-frames (pts != dts, an edit list for the reorder delay), one thread: the host is shared
H264 = ("-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-pix_fmt", "yuv420p", "-g", "25")


def _srt(cues: tuple[tuple[float, float, str], ...] = SUBTITLE_CUES) -> str:
    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return "".join(f"{i}\n{stamp(a)} --> {stamp(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))


def _ass(cues: tuple[tuple[float, float, str], ...] = SUBTITLE_CUES) -> str:
    def stamp(t: float) -> str:
        cs = round(t * 100)
        return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"

    head = ("[Script Info]\nScriptType: v4.00+\nPlayResX: 160\nPlayResY: 96\n\n[V4+ Styles]\n"
            "Format: Name, Fontname, Fontsize, PrimaryColour, Bold, Italic, Alignment\n"
            "Style: Default,Arial,12,&H00FFFFFF,0,0,2\n\n[Events]\n"
            "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")
    return head + "".join(f"Dialogue: 0,{stamp(a)},{stamp(b)},Default,,0,0,0,,{{\\i1}}{text}\n"
                          for a, b, text in cues)


def _ffmetadata(chapters: tuple[tuple[float, float, str], ...] = CHAPTERS, title: str = CONTAINER_TITLE) -> str:
    body = "".join(f"[CHAPTER]\nTIMEBASE=1/1000\nSTART={round(a * 1000)}\nEND={round(b * 1000)}\ntitle={name}\n"
                   for a, b, name in chapters)
    return f";FFMETADATA1\ntitle={title}\n{body}"


def _write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


# --- MP4 edit list surgery -------------------------------------------------------------------------

def _boxes(buf: bytes | bytearray, start: int, end: int) -> Iterator[tuple[str, int, int, int]]:
    """(type, box start, payload start, box end) of each ISO-BMFF box in buf[start:end]."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[pos:pos + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", buf[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        yield kind.decode("latin-1"), pos, pos + header, pos + size
        pos += size


def _find(buf: bytes | bytearray, start: int, end: int, path: list[str]) -> Iterator[tuple[int, int]]:
    for kind, _, body, stop in _boxes(buf, start, end):
        if kind == path[0]:
            if len(path) == 1:
                yield body, stop
            else:
                yield from _find(buf, body, stop, path[1:])


def _skip_aac_priming_after_empty_edit(path: Path, priming: int = AAC_PRIMING) -> None:
    """Rewrite the audio elst from [empty d, media@0] to [empty d+priming, media@priming].

    ffmpeg's MP4 muxer cannot write an empty edit *and* skip the AAC encoder delay in one edit list:
    with a late-starting track it presents the priming frame. Encoders such as Apple's do write both,
    and a faithful copy must keep them, so the clip carries that real-world layout.
    """
    buf = bytearray(path.read_bytes())
    moov_body, moov_end = next(_find(buf, 0, len(buf), ["moov"]))
    mvhd, _ = next(_find(buf, moov_body, moov_end, ["mvhd"]))
    movie_scale = struct.unpack(">I", buf[mvhd + 12:mvhd + 16])[0] if buf[mvhd] == 0 else \
        struct.unpack(">I", buf[mvhd + 20:mvhd + 24])[0]
    for kind, _, body, stop in _boxes(buf, moov_body, moov_end):
        if kind != "trak":
            continue
        hdlr, _ = next(_find(buf, body, stop, ["mdia", "hdlr"]))
        if buf[hdlr + 8:hdlr + 12] != b"soun":
            continue
        mdhd, _ = next(_find(buf, body, stop, ["mdia", "mdhd"]))
        media_scale = struct.unpack(">I", buf[mdhd + 12:mdhd + 16])[0]
        elst, _ = next(_find(buf, body, stop, ["edts", "elst"]))
        if buf[elst] != 0 or struct.unpack(">I", buf[elst + 4:elst + 8])[0] != 2:
            raise RuntimeError(f"{path}: unexpected audio edit list layout")
        (empty, empty_time, rate), (media, media_time, rate2) = (
            struct.unpack(">IiI", buf[elst + 8 + 12 * i:elst + 20 + 12 * i]) for i in range(2))
        if empty_time != -1 or media_time != 0:
            raise RuntimeError(f"{path}: audio edit list is not [empty, media@0]")
        shift = round(priming * movie_scale / media_scale)
        buf[elst + 8:elst + 32] = struct.pack(">IiIIiI", empty + shift, -1, rate, media - shift, priming, rate2)
        path.write_bytes(bytes(buf))
        return
    raise RuntimeError(f"{path}: no audio track")


# --- DVD subpictures ----------------------------------------------------------------------------

def _spu_rle_line(pixels: list[int]) -> bytes:
    """One bitmap line in DVD SPU run-length code (nibble codes, byte aligned at the end of the line)."""
    nibbles: list[int] = []
    i = 0
    while i < len(pixels):
        run = 1
        while i + run < len(pixels) and pixels[i + run] == pixels[i] and run < 255:
            run += 1
        code = run << 2 | pixels[i]
        width = 1 if run < 4 else 2 if run < 16 else 3 if run < 64 else 4
        nibbles += [code >> 4 * k & 15 for k in reversed(range(width))]
        i += run
    if len(nibbles) % 2:
        nibbles.append(0)
    return bytes(nibbles[k] << 4 | nibbles[k + 1] for k in range(0, len(nibbles), 2))


def dvd_spu_packet(bitmap: list[list[int]], x: int, y: int, duration_ms: int) -> bytes:
    """A complete DVD subpicture unit: interlaced RLE fields, then a show and a hide control sequence."""
    height, width = len(bitmap), len(bitmap[0])
    top = b"".join(_spu_rle_line(bitmap[r]) for r in range(0, height, 2))
    bottom = b"".join(_spu_rle_line(bitmap[r]) for r in range(1, height, 2))
    show_at = 4 + len(top) + len(bottom)
    x2, y2 = x + width - 1, y + height - 1
    area = bytes([x >> 4, (x & 15) << 4 | x2 >> 8, x2 & 255, y >> 4, (y & 15) << 4 | y2 >> 8, y2 & 255])
    commands = (b"\x01"  # start display
                + b"\x03\x32\x10"  # colour i -> palette entry i
                + b"\x04\xff\xf0"  # index 0 transparent, 1-3 opaque
                + b"\x05" + area + b"\x06" + struct.pack(">HH", 4, 4 + len(top)) + b"\xff")
    hide_at = show_at + 4 + len(commands)
    show = struct.pack(">HH", 0, hide_at) + commands
    hide = struct.pack(">HH", round(duration_ms * 90 / 1024), hide_at) + b"\x02\xff"
    body = top + bottom + show + hide
    return struct.pack(">HH", 4 + len(body), show_at) + body


DVD_PALETTE = ("size: 160x96\npalette: 000000, ffffff, ff0000, 00ff00, 0000ff, ffff00, ff00ff, 00ffff, "
               "808080, 404040, c0c0c0, 800000, 008000, 000080, 808000, 800080\n")


def _dvd_subtitle_track(path: Path, cues: tuple[tuple[float, float, str], ...] = SUBTITLE_CUES) -> Path:
    """A Matroska file holding only a dvd_subtitle track with one 2-colour checker bitmap per cue."""
    checker = [[1 if 2 <= c < 30 and 2 <= r < 10 and (c // 4 + r // 4) % 2 == 0 else 0 for c in range(32)]
               for r in range(12)]
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("dvdsub")  # an encoder context, only so that extradata (the palette) can be set
        stream.codec_context.extradata = DVD_PALETTE.encode()
        stream.metadata["language"] = "eng"
        stream.metadata["title"] = "DVD bitmap"
        stream.time_base = Fraction(1, 1000)
        for n, (start, end, _) in enumerate(cues):
            packet = av.Packet(dvd_spu_packet(checker, 20 + 30 * n, 70 - 20 * n, round((end - start) * 1000)))
            packet.stream = stream
            packet.time_base = Fraction(1, 1000)
            packet.pts = packet.dts = round(start * 1000)
            packet.duration = round((end - start) * 1000)
            out.mux(packet)
    return path


# --- the clips --------------------------------------------------------------------------------------

def _offset_audio(folder: Path) -> Path:
    video, audio = folder / "_oa_video.mp4", folder / "_oa_audio.m4a"
    run_ffmpeg(*_video_input(), *H264, video)
    run_ffmpeg(*_audio_input(), "-c:a", "aac", audio)
    out = folder / "offset_audio.mp4"
    # the offset moves the (demuxer-discarded) priming packet too: the muxer then starts the track at
    # AUDIO_OFFSET - priming with an empty edit and no skip, which the surgery below turns into the real layout
    run_ffmpeg("-i", video, "-itsoffset", AUDIO_OFFSET, "-i", audio,
               "-map", "0:v", "-map", "1:a", "-c", "copy", out)
    _skip_aac_priming_after_empty_edit(out)
    return out


def _offset_video(folder: Path) -> Path:
    video, audio = folder / "_ov_video.mp4", folder / "_ov_audio.m4a"
    run_ffmpeg(*_video_input(), *H264, video)
    run_ffmpeg(*_audio_input(3), "-c:a", "aac", audio)
    out = folder / "offset_video.mp4"
    run_ffmpeg("-itsoffset", AUDIO_OFFSET, "-i", video, "-i", audio, "-map", "0:v", "-map", "1:a", "-c", "copy", out)
    return out


def _two_audio(folder: Path) -> Path:
    out = folder / "two_audio.mp4"
    run_ffmpeg(*_video_input(), *_audio_input(), *_audio_input(frequency=660),
               "-map", "0:v", "-map", "1:a", "-map", "2:a", *H264, "-c:a:0", "aac", "-c:a:1", "ac3",
               "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=English stereo",
               "-metadata:s:a:1", "language=fra", "-metadata:s:a:1", "title=Français AC-3",
               "-disposition:a:0", "default", "-disposition:a:1", "0", out)
    return out


def _text_subs_mp4(folder: Path) -> Path:
    srt = _write(folder, "_subs.srt", _srt())
    out = folder / "text_subs_mp4.mp4"
    run_ffmpeg(*_video_input(), *_audio_input(), "-i", srt, "-map", "0:v", "-map", "1:a", "-map", "2:s",
               *H264, "-c:a", "aac", "-c:s", "mov_text",
               "-metadata:s:s:0", "language=eng", "-metadata:s:s:0", "title=English", out)
    return out


def _text_subs_mkv(folder: Path) -> Path:
    srt, ass = _write(folder, "_subs.srt", _srt()), _write(folder, "_subs.ass", _ass())
    out = folder / "text_subs_mkv.mkv"
    run_ffmpeg(*_video_input(), *_audio_input(), "-i", srt, "-i", ass,
               "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map", "3:s", *H264, "-c:a", "aac", "-c:s", "copy",
               "-metadata:s:s:0", "language=eng", "-metadata:s:s:0", "title=English SRT",
               "-metadata:s:s:1", "language=fra", "-metadata:s:s:1", "title=Français ASS", out)
    return out


def _bitmap_subs(folder: Path, ext: str) -> Path:
    subs = folder / "_dvdsub.mkv"
    if not subs.exists():
        _dvd_subtitle_track(subs)
    out = folder / f"bitmap_subs_{ext}.{ext}"
    run_ffmpeg(*_video_input(), *_audio_input(), "-i", subs, "-map", "0:v", "-map", "1:a", "-map", "2:s",
               *H264, "-c:a", "aac", "-c:s", "copy", out)
    return out


def _chapters(folder: Path, ext: str) -> Path:
    meta = _write(folder, "_chapters.txt", _ffmetadata())
    out = folder / f"chapters_{ext}.{ext}"
    run_ffmpeg(*_video_input(), *_audio_input(), "-i", meta, "-map", "0:v", "-map", "1:a",
               "-map_metadata", "2", "-map_chapters", "2", *H264, "-c:a", "aac", out)
    return out


def _vfr_gaps(folder: Path) -> Path:
    out = folder / "vfr_gaps.mp4"
    run_ffmpeg(*_video_input(1.6), *_audio_input(4), "-map", "0:v", "-map", "1:a",
               "-vf", f"settb=1/1000,setpts='{_VFR_SETPTS}'", "-fps_mode", "passthrough",
               "-enc_time_base:v", "1/1000", *H264, "-video_track_timescale", "1000", "-c:a", "aac", out)
    return out


def _attachment(folder: Path) -> Path:
    font = _write(folder, ATTACHMENT_NAME, ATTACHMENT_DATA)
    out = folder / "attachment.mkv"
    run_ffmpeg(*_video_input(), *_audio_input(), "-map", "0:v", "-map", "1:a", *H264, "-c:a", "aac",
               "-attach", font, "-metadata:s:t:0", f"mimetype={ATTACHMENT_MIMETYPE}",
               "-metadata", f"title={CONTAINER_TITLE}", "-metadata", "comment=made by tests/media_clips.py", out)
    return out


def _pcm_mov(folder: Path) -> Path:
    out = folder / "pcm_mov.mov"
    run_ffmpeg(*_video_input(), *_audio_input(), "-map", "0:v", "-map", "1:a", *H264, "-c:a", "pcm_s16le", out)
    return out


def _everything_mkv(folder: Path) -> Path:
    srt, ass = _write(folder, "_subs.srt", _srt()), _write(folder, "_subs.ass", _ass())
    meta = _write(folder, "_chapters.txt", _ffmetadata())
    font = _write(folder, ATTACHMENT_NAME, ATTACHMENT_DATA)
    out = folder / "everything_mkv.mkv"
    run_ffmpeg(*_video_input(), *_audio_input(),
               "-itsoffset", EVERYTHING_AUDIO2_OFFSET, *_audio_input(1.5, frequency=660, rate=44100),
               "-i", srt, "-i", ass, "-i", meta,
               "-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:s", "-map", "4:s",
               "-map_metadata", "5", "-map_chapters", "5", *H264, "-c:a:0", "aac", "-c:a:1", "libmp3lame",
               "-c:s", "copy", "-attach", font, "-metadata:s:t:0", f"mimetype={ATTACHMENT_MIMETYPE}",
               "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=English",
               "-metadata:s:a:1", "language=fra", "-metadata:s:a:1", "title=Commentaire",
               "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=fra",
               "-disposition:a:0", "default", "-disposition:a:1", "0", "-disposition:s:1", "forced", out)
    return out


def _container(folder: Path, kind: str, ext: str, video: tuple[str, ...], audio: tuple[str, ...],
               fmt: tuple[str, ...] = ()) -> Path:
    out = folder / f"{kind}.{ext}"
    run_ffmpeg(*_video_input(1), *_audio_input(1), "-map", "0:v", "-map", "1:a", *video, *audio, *fmt, out)
    return out


_VP9 = ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k", "-threads", "1")
_CONTAINERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str]] = {
    # kind: (extension, video args, audio args, format args, description)
    "container_ts": ("ts", H264, ("-c:a", "aac"), ("-f", "mpegts"), "MPEG-TS: H.264 + AAC (ADTS)"),
    "container_m2ts": ("m2ts", H264, ("-c:a", "ac3"), ("-f", "mpegts", "-mpegts_m2ts_mode", "1"),
                       "BDAV M2TS (192-byte packets): H.264 + AC-3"),
    "container_mts": ("mts", H264, ("-c:a", "ac3"), ("-f", "mpegts", "-mpegts_m2ts_mode", "1"),
                      "AVCHD .mts (M2TS packets): H.264 + AC-3"),
    "container_mpg": ("mpg", ("-c:v", "mpeg2video", "-b:v", "500k"), ("-c:a", "mp2"), ("-f", "mpeg"),
                      "MPEG program stream: MPEG-2 video + MP2"),
    "container_flv": ("flv", H264, ("-c:a", "aac"), ("-f", "flv"), "FLV: H.264 + AAC"),
    "container_wmv": ("wmv", ("-c:v", "wmv2", "-b:v", "300k"), ("-c:a", "wmav2", "-b:a", "64k"), ("-f", "asf"),
                      "ASF: WMV2 + WMA v2"),
    "container_3gp": ("3gp", H264, ("-c:a", "aac", "-ac", "1", "-ar", "16000"), ("-f", "3gp"),
                      "3GP: H.264 + mono AAC"),
    "container_webm": ("webm", _VP9, ("-c:a", "libopus"), ("-f", "webm"), "WebM: VP9 + Opus"),
    "container_avi": ("avi", ("-c:v", "mpeg4", "-q:v", "5", "-bf", "0"), ("-c:a", "libmp3lame"), ("-f", "avi"),
                      "AVI: MPEG-4 part 2 + MP3"),
}


def _not_video_m4a(folder: Path) -> Path:
    out = folder / "not_video_m4a.m4a"
    run_ffmpeg(*_audio_input(1), "-c:a", "aac", out)
    return out


def _not_video_png_ts(folder: Path) -> Path:
    out = folder / "not_video_png_ts.ts"
    run_ffmpeg(*_video_input(1), "-frames:v", "1", "-c:v", "png", "-f", "image2pipe", out)
    return out


def _not_video_random_mts(folder: Path) -> Path:
    return _write(folder, "not_video_random_mts.mts", random.Random(20240601).randbytes(64 * 1024))


def _not_video_text_mpg(folder: Path) -> Path:
    return _write(folder, "not_video_text_mpg.mpg", "This is not a video.\nJust a note someone renamed.\n" * 40)


_Maker = Callable[[Path], Path]
CLIPS: dict[str, tuple[_Maker, str]] = {
    "offset_audio": (_offset_audio, f"MP4: H.264 from 0, AAC from {AUDIO_OFFSET} s (elst: empty edit + priming skip)"),
    "offset_video": (_offset_video, f"MP4: AAC from 0, H.264 from {AUDIO_OFFSET} s (empty edit on the video)"),
    "two_audio": (_two_audio, "MP4: H.264 + AAC (eng, 'English stereo', default) + AC-3 (fra, 'Français AC-3')"),
    "text_subs_mp4": (_text_subs_mp4, "MP4: H.264 + AAC + mov_text (eng, 'English'), 3 cues"),
    "text_subs_mkv": (_text_subs_mkv, "MKV: H.264 + AAC + SubRip (eng) + ASS (fra), 3 cues each"),
    "bitmap_subs_mkv": (lambda f: _bitmap_subs(f, "mkv"), "MKV: H.264 + AAC + dvd_subtitle (eng), 3 bitmaps"),
    "bitmap_subs_mp4": (lambda f: _bitmap_subs(f, "mp4"), "MP4: H.264 + AAC + dvd_subtitle (eng), 3 bitmaps"),
    "chapters_mp4": (lambda f: _chapters(f, "mp4"), "MP4: H.264 + AAC, 3 titled chapters, container title"),
    "chapters_mkv": (lambda f: _chapters(f, "mkv"), "MKV: H.264 + AAC, 3 titled chapters, container title"),
    "vfr_gaps": (_vfr_gaps, "MP4: 40 H.264 frames at vfr_frame_times_ms() (25 fps, 1.5 s gap, "
                            "jittery 10 fps) + 4 s AAC"),
    "attachment": (_attachment, f"MKV: H.264 + AAC, attachment {ATTACHMENT_NAME} ({ATTACHMENT_MIMETYPE}), title"),
    "pcm_mov": (_pcm_mov, "MOV: H.264 + PCM s16le"),
    "everything_mkv": (_everything_mkv, "MKV: H.264, AAC eng + MP3 fra (+0.25 s), SRT eng + ASS fra (forced), "
                                        "3 chapters, attachment, title"),
    **{kind: ((lambda f, k=kind, c=spec: _container(f, k, c[0], c[1], c[2], c[3])), spec[4])
       for kind, spec in _CONTAINERS.items()},
    "not_video_m4a": (_not_video_m4a, "audio only: AAC in .m4a"),
    "not_video_png_ts": (_not_video_png_ts, "a PNG image named .ts"),
    "not_video_random_mts": (_not_video_random_mts, "64 KiB of random bytes named .mts"),
    "not_video_text_mpg": (_not_video_text_mpg, "a text file named .mpg"),
}
CONTAINER_KINDS: tuple[str, ...] = tuple(_CONTAINERS)
NOT_VIDEO_KINDS: tuple[str, ...] = tuple(kind for kind in CLIPS if kind.startswith("not_video_"))
EDGE_KINDS: tuple[str, ...] = tuple(kind for kind in CLIPS if kind not in CONTAINER_KINDS + NOT_VIDEO_KINDS)


def make_clip(kind: str, folder: Path) -> Path:
    """Build clip `kind` in `folder` (reused when already there) and return its path."""
    maker, _ = CLIPS[kind]
    done = folder / f".{kind}.done"
    if done.exists():
        return Path(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    path = maker(folder)
    done.write_text(str(path))
    return path
