"""Meme captions: white text with a black stroke at the top and bottom, sized and wrapped to the canvas, in the
bundled DejaVu Sans Condensed Bold (Latin, Greek, Cyrillic; its licence beside it in fonts/)."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import MemeError

FONT = Path(__file__).parent / "fonts" / "DejaVuSansCondensed-Bold.ttf"
MAX_CAPTION_CHARS = 200
WIDTH_SHARE, HEIGHT_SHARE = 0.94, 0.3  # of the canvas: what one caption may cover
MIN_FONT_PX = 10  # smaller is no longer readable in a chat


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str] | None:
    """Words in lines no wider than `width`, or None when one word alone is wider."""
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if font.getlength(trial) <= width:
            line = trial
        elif font.getlength(word) > width:
            return None
        else:
            lines.append(line)
            line = word
    return lines + [line] if line else lines


def layout(text: str, side: int) -> tuple[ImageFont.FreeTypeFont, list[str], int]:
    """The largest font (and its lines and stroke) at which `text` fits a side x side canvas, or a one-line error."""
    if len(text) > MAX_CAPTION_CHARS or "\x00" in text:
        raise MemeError(f"a caption is at most {MAX_CAPTION_CHARS} characters of plain text: shorten it")
    floor = max(MIN_FONT_PX, side // 24)
    for size in range(max(floor, side // 6), floor - 1, -1):
        font = ImageFont.truetype(str(FONT), size)
        stroke = max(1, size // 12)
        lines = _wrap(text.upper(), font, side * WIDTH_SHARE - 2 * stroke)
        if lines is not None and len(lines) * (size + stroke) * 1.1 <= side * HEIGHT_SHARE:
            return font, lines, stroke
    raise MemeError(f"the caption {text[:40]!r} does not fit a {side}x{side} canvas even at {floor} px: shorten it")


def caption_overlay(side: int, top: str | None, bottom: str | None) -> Image.Image:
    """An RGBA side x side layer with the captions drawn in, transparent elsewhere."""
    overlay = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for text, at_top in ((top, True), (bottom, False)):
        if not text or not text.strip():
            continue
        font, lines, stroke = layout(text.strip(), side)
        step = (font.size + stroke) * 1.1
        y = stroke + side * 0.02 if at_top else side - side * 0.02 - stroke - step * len(lines)
        for i, line in enumerate(lines):
            draw.text((side / 2, y + i * step), line, font=font, anchor="ma", fill=(255, 255, 255, 255),
                      stroke_width=stroke, stroke_fill=(0, 0, 0, 255))
    return overlay


def draw_captions(frames: np.ndarray, top: str | None, bottom: str | None) -> np.ndarray:
    """`f h w c` frames (square; RGB or RGBA) with the captions over every frame; RGBA frames become opaque where
    the text is."""
    if not (top or bottom):
        return frames
    overlay = caption_overlay(frames.shape[1], top, bottom)
    mode = {3: "RGB", 4: "RGBA"}[frames.shape[-1]]
    out = []
    for f in frames:
        image = Image.fromarray(f, mode).convert("RGBA")
        image.alpha_composite(overlay)
        out.append(np.asarray(image.convert(mode)))
    return np.stack(out)
