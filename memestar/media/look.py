"""A clip's look after sampling: how it loops, a transparent sticker background with its outline, captions, and
the pixel-art style; applied in that order at the output canvas, so captions and outlines stay sharp.

loop (native size) -> matte (native size: the cut follows the sampled pixels), the outline's colour painted under
it -> palette reduction (pixel style) -> scale to the canvas (bicubic, the alpha with the colour; nearest-neighbour
for pixel art) -> outline (the alpha grown) -> shadow -> captions.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..checks import plain_text
from ..errors import MemeError
from ..options import option
from .captions import MAX_CAPTION_CHARS, draw_captions, layout
from .loops import LOOPS, make_loop
from .matte import add_outline, add_shadow, outline_width, paint_under, with_matte
from .resize import resize_frames
from .writers import shared_palette

PIXEL_COLOURS = (2, 64)  # the pixel style's palette sizes allowed


@dataclass
class Look:
    loop: str = option(
        "forward",
        "forward, pingpong (there and back) or crossfade (the end fades into the start).",
        choices=LOOPS,
        body=True,
    )
    sticker: bool = option(
        False, "A transparent background (cut from the frames' border colour) and a white outline.", body=True
    )
    shadow: bool = option(False, "With --sticker: a soft drop shadow under it.", body=True)
    top: str | None = option(
        None, "Caption at the top, in the classic meme look.", max_length=MAX_CAPTION_CHARS, body=True
    )
    bottom: str | None = option(None, "Caption at the bottom.", max_length=MAX_CAPTION_CHARS, body=True)
    pixel: int | None = option(
        None,
        "Pixel-art style: this many colours, scaled up without smoothing.",
        low=PIXEL_COLOURS[0],
        high=PIXEL_COLOURS[1],
    )

    def check(self, side: int | None = None, fmt: str | None = None) -> "Look":
        """Refuses what cannot be: a bad loop or palette, a shadow or sticker with nowhere transparent to go (`fmt`,
        the output format, when known), a caption that cannot fit a `side` canvas (when known)."""
        if self.loop not in LOOPS:
            raise MemeError(f"--loop {self.loop!r} is not a loop: use {', '.join(LOOPS)}")
        if self.shadow and not self.sticker:
            raise MemeError("--shadow falls on a transparent background: add --sticker")
        if self.sticker and fmt == "mp4":
            raise MemeError("an MP4 has no transparency: use gif or webp (or a preset) for a sticker")
        if self.pixel is not None and not PIXEL_COLOURS[0] <= self.pixel <= PIXEL_COLOURS[1]:
            raise MemeError(f"the pixel style takes {PIXEL_COLOURS[0]} to {PIXEL_COLOURS[1]} colours, not {self.pixel}")
        for text, where in ((self.top, "the top caption"), (self.bottom, "the bottom caption")):
            if text:
                plain_text(text, where)
            if text and side:
                layout(text.strip(), side)  # a caption that cannot fit is refused before any sampling
        return self

    @property
    def plain(self) -> bool:
        return self == Look()


def pixelate(frames: np.ndarray, colours: int) -> np.ndarray:
    """The clip in `colours` colours, one palette for every frame, no dithering (flat pixel-art areas)."""
    palette = shared_palette(np.ascontiguousarray(frames[..., :3]), colours)
    rgb = np.stack(
        [
            np.asarray(
                Image.fromarray(np.ascontiguousarray(f[..., :3]))
                .quantize(palette=palette, dither=Image.Dither.NONE)
                .convert("RGB")
            )
            for f in frames
        ]
    )
    return np.concatenate([rgb, frames[..., 3:]], axis=-1) if frames.shape[-1] == 4 else rgb


def apply_look(frames: np.ndarray, look: Look, side: int | None = None) -> np.ndarray:
    """`f h w 3` uint8 frames in `look` at a `side` canvas (default: their own size); RGBA when a sticker."""
    side = side or frames.shape[1]
    frames = make_loop(frames, look.loop)
    if look.sticker:
        frames = paint_under(with_matte(frames))
    if look.pixel:
        frames = pixelate(frames, look.pixel)
    frames = resize_frames(frames, side, nearest=look.pixel is not None)
    if look.sticker:
        frames = add_outline(frames, outline_width(side))
    if look.shadow:
        frames = add_shadow(frames, side)
    return draw_captions(frames, look.top, look.bottom)
