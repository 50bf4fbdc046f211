"""Which container the output is, and what happens to each stream of the upload.

MP4 whenever every stream that is kept fits it bit for bit and plays in the usual players;
otherwise Matroska, which holds nearly everything by stream copy. What neither holds as it is gets
converted (an MP4 text subtitle into SubRip for Matroska) and is listed as converted; a stream no
container we write can carry (e.g. a timecode or telemetry data track) is listed as not kept, with
the reason, never silently lost. Decided at probe time, so the output's name is known up front.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field, replace

import av

from scoring_job.output_format import OutputFormat
from scoring_job.probe import main_video_stream

# Codecs of the usual players' MP4 (browsers, QuickTime, VLC); the muxer takes more (PCM, TrueHD,
# Vorbis), but a file that does not play is no better than a Matroska one.
MP4_PLAYABLE = {
    "audio": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    "subtitle": {"mov_text", "dvd_subtitle"},
    "video": {"h264", "hevc", "mpeg4", "av1", "vp9", "mjpeg", "png"},
}
# Text subtitles Matroska cannot hold as they are, and what they become there.
MKV_CONVERSIONS = {"mov_text": "subrip"}
# Audio neither container holds as it is (e.g. WMA from .wmv) is decoded and stored losslessly.
AUDIO_CONVERSION = {"matroska": "flac", "mp4": "aac"}
STYLED_CODEC = OutputFormat().codec  # until probe applies the source's (OutputPlan.with_video_format)


@dataclass(frozen=True)
class StreamAction:
    index: int  # the stream's index in the upload
    type: str
    codec: str
    action: str  # "styled", "kept", "converted", "not kept"
    output_codec: str | None
    language: str | None
    title: str | None
    note: str | None = None


@dataclass(frozen=True)
class OutputPlan:
    format: str  # "mp4" or "matroska"
    streams: tuple[StreamAction, ...]
    attachments: int
    chapters: int
    video_format: OutputFormat = field(default_factory=OutputFormat)  # the styled video's codec and picture

    @property
    def extension(self) -> str:
        return ".mp4" if self.format == "mp4" else ".mkv"

    @property
    def content_type(self) -> str:
        return "video/mp4" if self.format == "mp4" else "video/x-matroska"

    def as_dict(self) -> dict:
        return {"format": self.format, "attachments": self.attachments, "chapters": self.chapters,
                "streams": [asdict(stream) for stream in self.streams],
                "video_format": self.video_format.model_dump(mode="json")}

    @classmethod
    def from_dict(cls, data: dict) -> OutputPlan:
        return cls(data["format"], tuple(StreamAction(**s) for s in data["streams"]), data["attachments"],
                   data["chapters"], OutputFormat(**data.get("video_format", {})))

    def with_video_format(self, video_format: OutputFormat) -> OutputPlan:
        """The plan with the styled stream encoded as `video_format`; what it changes of the source's
        picture is the styled stream's note in the job's `streams` record."""
        note = "; ".join(video_format.conversions) or None
        streams = tuple(replace(s, output_codec=video_format.codec, note=note) if s.action == "styled" else s
                        for s in self.streams)
        return replace(self, streams=streams, video_format=video_format)


def plan_output(source: av.container.InputContainer) -> OutputPlan:
    video = main_video_stream(source)
    others = kept_streams(source, video)
    attachments = sum(1 for s in source.streams if s.type == "attachment")
    fits_mp4 = not attachments and all(_fits("mp4", s) for s in others)
    target = "mp4" if fits_mp4 else "matroska"
    actions = [_action(video, "styled", STYLED_CODEC)]
    for stream in others:
        codec = codec_name(stream)
        if _fits(target, stream):
            actions.append(_action(stream, "kept", codec))
        elif codec in MKV_CONVERSIONS:
            actions.append(_action(stream, "converted", MKV_CONVERSIONS[codec],
                                   f"{codec} cannot be stored in Matroska as it is; its text is kept"))
        elif stream.type == "audio":
            actions.append(_action(stream, "converted", AUDIO_CONVERSION[target],
                                   f"{codec} cannot be stored in {target} as it is; decoded and re-encoded"))
        else:
            actions.append(_action(stream, "not kept", None,
                                   f"a {stream.type} stream of codec {codec!r} fits neither MP4 nor Matroska"))
    return OutputPlan(target, tuple(sorted(actions, key=lambda a: a.index)), attachments, len(source.chapters()))


def kept_streams(source: av.container.InputContainer, video: av.stream.Stream) -> list[av.stream.Stream]:
    """Every stream but the styled video, attachments (carried in the header) and streams the
    demuxer itself hides (an MP4's chapter text track: the chapters are carried as chapters)."""
    return [s for s in source.streams if s.index != video.index and s.type != "attachment"
            and s.discard != av.stream.Discard.all]


def codec_name(stream: av.stream.Stream) -> str:
    """The codec's own name (`subrip`, `dvd_subtitle`), not its decoder's (`srt`, `dvdsub`)."""
    context = stream.codec_context
    if context is None:
        return "none"
    return context.codec.canonical_name if context.codec is not None else context.name


def _action(stream: av.stream.Stream, action: str, output_codec: str | None, note: str | None = None) -> StreamAction:
    return StreamAction(stream.index, stream.type, codec_name(stream), action, output_codec,
                        stream.metadata.get("language"), stream.metadata.get("title"), note)


def _fits(container_format: str, stream: av.stream.Stream) -> bool:
    """The muxer's own verdict (it writes a header with this stream), plus the playable list for MP4."""
    if container_format == "mp4" and codec_name(stream) not in MP4_PLAYABLE.get(stream.type, ()):
        return False
    try:
        with av.open(io.BytesIO(), "w", format=container_format) as trial:
            trial.add_stream_from_template(stream)
            trial.start_encoding()
    except (av.FFmpegError, ValueError, TypeError, NotImplementedError):
        return False
    return True
