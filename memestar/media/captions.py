"""Meme captions: white text with a black stroke at the top and bottom, sized and wrapped to the canvas, in the
bundled DejaVu Sans Condensed Bold (Latin, Greek, Cyrillic, Arabic, Hebrew, ...; its licence beside it in fonts/),
with emoji in colour from Noto Color Emoji (SIL OFL 1.1: Debian's fonts-noto-color-emoji, or MEMESTAR_EMOJI_FONT).

Before any sampling, `layout` refuses in one line a character neither font covers (CJK, say), and control, format
and private-use characters: a caption never comes out with empty boxes in it.
"""

import functools
import os
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import MemeError

FONT = Path(__file__).parent / "fonts" / "DejaVuSansCondensed-Bold.ttf"
EMOJI_FONTS = (
    Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),  # Debian, Ubuntu
    Path("/usr/share/fonts/noto/NotoColorEmoji.ttf"),  # Arch
    Path("/usr/share/fonts/google-noto-color-emoji-fonts/NotoColorEmoji.ttf"),
)  # Fedora
EMOJI_PX = 109  # Noto Color Emoji holds bitmaps for this size only; they are drawn there and scaled (FACTS.md)
EMOJI_INSTALL = "apt-get install fonts-noto-color-emoji, or set MEMESTAR_EMOJI_FONT to NotoColorEmoji.ttf"
# what joins emoji into one: zero-width joiner, emoji presentation, keycap, skin tones, tag characters (flags)
JOINERS = {0x200D, 0xFE0F, 0x20E3, *range(0x1F3FB, 0x1F400), *range(0xE0020, 0xE0080)}
DIRECTION_MARKS = {0x200C, 0x200D, 0x200E, 0x200F}  # the format characters a caption may hold: ZWNJ, ZWJ, LRM, RLM
MAX_CAPTION_CHARS = 200
WIDTH_SHARE, HEIGHT_SHARE = 0.94, 0.3  # of the canvas: what one caption may cover
MIN_FONT_PX = 10  # smaller is no longer readable in a chat


@functools.cache
def covered(path: Path) -> frozenset[int]:
    """The code points the font at `path` has glyphs for."""
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(path, lazy=True)["cmap"].getBestCmap())


def emoji_font_path() -> Path | None:
    if os.environ.get("MEMESTAR_EMOJI_FONT"):
        return Path(os.environ["MEMESTAR_EMOJI_FONT"])
    return next((p for p in EMOJI_FONTS if p.is_file()), None)


@functools.cache
def emoji_font(path: Path) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(str(path), EMOJI_PX)
    except OSError as e:
        raise MemeError(f"the emoji font {path} cannot be read ({e}): {EMOJI_INSTALL}") from e


def runs(text: str) -> list[tuple[str, bool]]:
    """`text` in runs of (characters, is emoji): the text font draws the first kind, the emoji font the second. A
    character neither covers, or a control, format or private-use one, is a one-line error naming it."""
    text_font, emoji_path = covered(FONT), emoji_font_path()
    emoji = covered(emoji_path) if emoji_path and emoji_path.is_file() else frozenset()
    out: list[tuple[str, bool]] = []
    for i, ch in enumerate(text):
        code, after = ord(ch), text[i + 1 : i + 2]
        if code in JOINERS and out and out[-1][1]:
            is_emoji = True
        elif ch.isspace() and out:
            is_emoji = False
        elif unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Cn") and code not in DIRECTION_MARKS:
            raise MemeError(
                f"the caption holds U+{code:04X} ({unicodedata.category(ch)}: a control, format, "
                f"private-use or unassigned character): remove it"
            )
        elif code in text_font and not (code in emoji and (code >= 0x1F000 or after == "\ufe0f")):
            is_emoji = False
        elif code in emoji:
            is_emoji = True
        elif not emoji and (unicodedata.category(ch) == "So" or code >= 0x1F000):
            raise MemeError(f"the caption holds the emoji {ch} and no emoji font is installed: {EMOJI_INSTALL}")
        else:
            name = unicodedata.name(ch, "unnamed").title()
            raise MemeError(
                f"the caption holds {ch} (U+{code:04X} {name}), which no bundled font draws (DejaVu Sans: "
                f"Latin, Greek, Cyrillic, Arabic, Hebrew; Noto Color Emoji): remove it"
            )
        if out and out[-1][1] == is_emoji:
            out[-1] = (out[-1][0] + ch, is_emoji)
        else:
            out.append((ch, is_emoji))
    return out


def text_length(text: str, font: ImageFont.FreeTypeFont) -> float:
    """The drawn width of `text` at `font`'s size, emoji included."""
    parts = runs(text)
    if not any(is_emoji for _, is_emoji in parts):
        return font.getlength(text)
    emoji = emoji_font(emoji_font_path())
    return sum(
        emoji.getlength(part) * font.size / EMOJI_PX if is_emoji else font.getlength(part) for part, is_emoji in parts
    )


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str] | None:
    """Words in lines no wider than `width`, or None when one word alone is wider."""
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if text_length(trial, font) <= width:
            line = trial
        elif text_length(word, font) > width:
            return None
        else:
            lines.append(line)
            line = word
    return lines + [line] if line else lines


def layout(text: str, side: int) -> tuple[ImageFont.FreeTypeFont, list[str], int]:
    """The largest font (and its lines and stroke) at which `text` fits a side x side canvas, or a one-line error."""
    if len(text) > MAX_CAPTION_CHARS or "\x00" in text:
        raise MemeError(f"a caption is at most {MAX_CAPTION_CHARS} characters of plain text: shorten it")
    runs(text.upper())  # every character drawable, before any sizing
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
            parts = runs(line)
            if not any(is_emoji for _, is_emoji in parts):  # one call: raqm shapes and orders the whole line
                draw.text(
                    (side / 2, y + i * step),
                    line,
                    font=font,
                    anchor="ma",
                    fill=(255, 255, 255, 255),
                    stroke_width=stroke,
                    stroke_fill=(0, 0, 0, 255),
                )
                continue
            x = side / 2 - text_length(line, font) / 2
            for part, is_emoji in reversed(parts) if right_to_left(line) else parts:  # runs placed left to right
                if is_emoji:
                    glyphs = emoji_run(part, font.size)
                    overlay.alpha_composite(glyphs, (round(x), round(y + i * step + (step - glyphs.height) / 2)))
                else:
                    draw.text(
                        (x, y + i * step),
                        part,
                        font=font,
                        anchor="la",
                        fill=(255, 255, 255, 255),
                        stroke_width=stroke,
                        stroke_fill=(0, 0, 0, 255),
                    )
                x += text_length(part, font)
    return overlay


def right_to_left(text: str) -> bool:
    """Whether `text`'s first strongly directed character is Arabic or Hebrew (the line then reads right to left)."""
    return next(
        (unicodedata.bidirectional(c) in ("R", "AL") for c in text if unicodedata.bidirectional(c) in ("L", "R", "AL")),
        False,
    )


def emoji_run(text: str, size: int) -> Image.Image:
    """Emoji `text` in colour, scaled from the font's bitmaps to a `size`-px line."""
    font = emoji_font(emoji_font_path())
    width = max(1, round(font.getlength(text)))
    image = Image.new("RGBA", (width, EMOJI_PX * 3 // 2), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((0, 0), text, font=font, embedded_color=True)
    image = image.crop((0, 0, width, image.getbbox()[3] if image.getbbox() else 1))
    scale = size / EMOJI_PX
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
    )


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
