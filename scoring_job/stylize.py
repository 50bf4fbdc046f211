"""Stylize a whole video on this machine, audio kept:

    python -m scoring_job.stylize IN -o OUT --style SPEC [--scale F] [--stability A]

User errors print one line and exit with a code that says which kind they are (see EXIT_CODES).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict
from functools import cache
from pathlib import Path

from .manifest import DEFAULT_QUALITY, DEFAULT_STABILITY, X264_PRESETS
from .output_format import CODEC_CHOICES, ENCODERS
from .probe import ProbeError, probe_video
from .quality_target import FIXED_CRF
from .style_spec import VALID_FORMS, ImageStyle, StyleSpecError, parse_style

EXIT_CODES = {
    "ok": 0,
    "usage": 2,  # bad arguments, including a bad style spec (argparse uses 2 too)
    "input_missing": 3,
    "not_a_video": 4,  # not a video, corrupt, truncated, or audio only
    "style_image": 5,  # style image missing or unreadable
    "processing": 6,  # decoding/encoding failed part-way
    "interrupted": 130,
}


def _fail(kind: str, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_CODES[kind]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scoring_job.stylize", description="Restyle a video as a painting.")
    parser.add_argument("input", type=Path, help="video file to stylize")
    parser.add_argument("-o", "--output", type=Path, help="output .mp4 (default: INPUT.styled.mp4 beside the input)")
    parser.add_argument("--style", default="19", help=f"style: {VALID_FORMS} (default: 19)")
    parser.add_argument("--scale", type=float, default=1.0, help="resolution factor in (0, 1]; 1 keeps the size")
    parser.add_argument("--stability", type=float, default=DEFAULT_STABILITY,
                        help="temporal stability in [0, 1]: how much of the previous styled frame, carried along "
                             f"the motion, is kept; 0 stylizes every frame on its own (default {DEFAULT_STABILITY})")
    parser.add_argument("--codec", default="source", choices=CODEC_CHOICES,
                        help="output codec: source (default) keeps the input's family (H.264, HEVC, AV1, VP9; "
                             "others become H.264), or h264, hevc, av1; bit depth, chroma and colour are kept")
    parser.add_argument("--quality", type=float,
                        help=f"VMAF target, 50-100 (default {DEFAULT_QUALITY:g}): the largest x264 / x265 CRF "
                             "reaching it on this video's first frames styled is used (H.264 and HEVC outputs; "
                             f"AV1 and VP9 use CRF {FIXED_CRF})")
    parser.add_argument("--crf", type=int,
                        help="fix the encoder's constant quality instead of --quality, lower is better: 0-51 "
                             "(H.264, HEVC), 0-63 (AV1)")
    parser.add_argument("--preset", default="veryfast", choices=X264_PRESETS,
                        help="x264's preset names, mapped for the other encoders (default veryfast)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, help="frames per inference batch (default: 8 on GPU, 1 on CPU)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fast", "fp32", "bf16", "fp16", "int8"),
                        help="auto: bf16/fp16 on CUDA, fp32 on CPU; fast: allow reduced precision: the fastest "
                             "measured on this machine that keeps >= 35 dB PSNR against fp32 on this video's "
                             "first frames, else fp32 (the reasons are printed)")
    parser.add_argument("--compile", nargs="?", const="always", default="auto", choices=("auto", "always", "never"),
                        help="torch.compile the model: auto (default) when it pays for the video's length, "
                             "from timings measured on this machine; --compile alone means always")
    parser.add_argument("--no-preview", action="store_true", help="skip the before/after preview image")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        style = parse_style(args.style)
    except StyleSpecError as error:
        return _fail("usage", str(error))
    if not 0 < args.scale <= 1:
        return _fail("usage", f"--scale must be in (0, 1], got {args.scale}")
    if not 0 <= args.stability <= 1:
        return _fail("usage", f"--stability must be in [0, 1], got {args.stability}")
    top = ENCODERS[args.codec].max_crf if args.codec != "source" else 51
    if args.crf is not None and not 0 <= args.crf <= top:
        return _fail("usage", f"--crf must be 0-{top} for --codec {args.codec}, got {args.crf}")
    if args.crf is not None and args.quality is not None:
        return _fail("usage", "set --crf or --quality, not both: --crf fixes the encoder's CRF, --quality "
                              "searches for the largest CRF that reaches a VMAF target")
    if args.quality is not None and not 50 <= args.quality <= 100:
        return _fail("usage", f"--quality must be a VMAF target in 50-100, got {args.quality:g}")
    if not args.input.exists():
        return _fail("input_missing", f"input not found: {args.input}")
    try:
        info = probe_video(args.input)
    except ProbeError as error:
        return _fail("not_a_video", str(error))
    if isinstance(style, ImageStyle) and not Path(style.name).is_file():
        return _fail("style_image", f"style image not found: {style.name}")
    output = args.output or args.input.with_name(f"{args.input.stem}.styled.mp4")
    try:
        return _run(args, style, info, output)
    except KeyboardInterrupt:
        return _fail("interrupted", "interrupted; no output written")


def _run(args: argparse.Namespace, style, info, output: Path) -> int:
    # Imported here so that argument and input errors answer at once, without loading torch.
    from tqdm import tqdm

    from .compile_cache import CompileCache, default_cache_folder
    from .compile_choice import prepare_model
    from .engine import StyleImageError
    from .output_format import choose_output
    from .pipeline import SegmentError, stylize_segment
    from .precision_choice import SAMPLE_WINDOW, stylizer_for
    from .preview import evenly_spaced, write_preview
    from .quality_target import choose_crf_for, encoder_crf
    from .video_io import EncodeOptions, FfmpegError, head_frames, output_size

    width, height = output_size(info, args.scale)
    first_frames = cache(lambda: head_frames(args.input, info, (width, height), SAMPLE_WINDOW))
    try:
        stylizer, precision_choice = stylizer_for(style, args.device, args.batch_size, args.precision,
                                                  sample=first_frames)
        if precision_choice is not None:
            print(precision_choice.summary(), file=sys.stderr)
        prepare_model(stylizer, height, width, info.frame_count, args.compile, CompileCache(default_cache_folder()))
    except StyleImageError as error:
        return _fail("style_image", str(error))
    except (RuntimeError, ValueError) as error:
        return _fail("usage", str(error))
    video_format = choose_output(asdict(info), args.codec, args.scale)
    for conversion in video_format.conversions:
        print(f"note: {conversion}", file=sys.stderr)
    crf, choice = encoder_crf(args.crf, args.quality or DEFAULT_QUALITY, video_format,
                              lambda target: choose_crf_for(stylizer, first_frames(), info.fps_text, target,
                                                            args.preset, codec=video_format.encoder.name))
    if choice is not None:
        print(f"quality: CRF {choice.crf} (VMAF {choice.vmaf:.2f} against lossless on {choice.frames} frames, "
              f"target {choice.target:g}{'' if choice.reached else ', not reached'})", file=sys.stderr)
    with tqdm(total=info.frame_count, unit="frame", desc=args.input.name, file=sys.stderr) as bar:
        try:
            result = stylize_segment(
                args.input, output, stylizer, encode=EncodeOptions(crf, args.preset, video_format.encoder.name),
                scale=args.scale, copy_audio=True, info=info, on_frames=bar.update, stability=args.stability,
                output=video_format,
            )
        except (SegmentError, FfmpegError) as error:
            return _fail("processing", str(error))
    print(f"styled video: {output}  ({result.frames} frames, {result.width}x{result.height}, "
          f"{result.fps:.2f} fps on {result.device}, audio {'kept' if info.has_audio else 'none in source'})")
    if not args.no_preview:
        samples = [(args.input, output, n) for n in evenly_spaced(result.frames)]
        preview = write_preview(samples, output.with_suffix(".preview.jpg"))
        print(f"before/after preview: {preview}")
    return EXIT_CODES["ok"]


if __name__ == "__main__":
    sys.exit(main())
