"""The emoji world: one Noto Color Emoji on a plain or gradient background, 64x64, and its motions.

The shapes world (`world.py`) proves the pipeline; this one is what a chat app speaks. Each emoji is captioned by its
Unicode name ("a cow face"), each clip by the emoji and a named motion ("a cow face popping"). Emoji are drawn from an
atlas of their renders shipped in the package (`emoji/atlas.png`, built from the font by `python -m
memestar.tiny.emoji_world --atlas`), so every machine draws the same pixels, with or without the font. The renders
are of Noto Color Emoji (SIL Open Font License 1.1; `emoji/LICENSE-NotoColorEmoji.txt`).

Everything is a pure function of its arguments (or of a seed), like the shapes world: `EmojiSprite` says what is
drawn, `render` draws it (4x supersampled), `motion` turns it into 16 frames.
"""

import argparse
import functools
import json
import math
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIDE = 64
FRAMES = 16
ATLAS_DIR = Path(__file__).parent / "emoji"
ATLAS_CELL = 96  # px: an emoji's longer side in the atlas (the world draws them at 14 to 44 px)
_SUPERSAMPLE = 4

# 56 emoji chosen for memes and to be told apart at 32 px: animals, fruit and food, faces, objects (Unicode names).
EMOJI = (
    "cat face",
    "dog face",
    "pig face",
    "cow face",
    "rabbit face",
    "tiger face",
    "monkey face",
    "bear face",
    "panda face",
    "frog face",
    "fox face",
    "unicorn face",
    "koala",
    "chicken",
    "penguin",
    "elephant",
    "octopus",
    "turtle",
    "tropical fish",
    "lady beetle",
    "butterfly",
    "snake",
    "pineapple",
    "banana",
    "green apple",
    "red apple",
    "blueberries",
    "grapes",
    "watermelon",
    "strawberry",
    "cherries",
    "lemon",
    "peach",
    "pear",
    "avocado",
    "carrot",
    "broccoli",
    "hamburger",
    "slice of pizza",
    "doughnut",
    "birthday cake",
    "grinning face",
    "face with tears of joy",
    "pile of poo",
    "ghost",
    "extraterrestrial alien",
    "robot face",
    "fire",
    "rainbow",
    "rocket",
    "soccer ball",
    "balloon",
    "wrapped present",
    "crown",
    "cactus",
    "sunflower",
)
MOTIONS = ("bouncing", "sliding", "growing", "spinning", "popping", "running", "dancing")
SIZE = 30.0  # px: the emoji's longer side in a clip (the bank draws 18 to 42)
BANK_SIZES = (18.0, 42.0)
BACKGROUNDS = ("plain", "gradient")


@dataclass(frozen=True)
class EmojiSprite:
    name: str  # one of EMOJI
    x: float = 32.0  # centre, pixels
    y: float = 32.0
    size: float = SIZE  # the upright emoji's longer side, pixels
    angle: float = 0.0  # degrees, counter-clockwise
    background: tuple = ((128, 128, 128),)  # one colour (plain), or two and an angle in degrees (gradient)

    def caption(self) -> str:
        return f"a {self.name}"


def character(name: str) -> str:
    return unicodedata.lookup(name.upper())


@functools.cache
def atlas() -> dict[str, Image.Image]:
    """name -> RGBA render, cropped to its pixels, its longer side ATLAS_CELL."""
    sheet = Image.open(ATLAS_DIR / "atlas.png").convert("RGBA")
    boxes = json.loads((ATLAS_DIR / "atlas.json").read_text())["boxes"]
    missing = set(EMOJI) - set(boxes)
    if missing:
        raise ValueError(f"the emoji atlas lacks {sorted(missing)}: rebuild it (python -m {__name__} --atlas)")
    return {name: sheet.crop(tuple(boxes[name])) for name in EMOJI}


def build_atlas(font_path: Path, out: Path = ATLAS_DIR) -> Path:
    """Draws every emoji of the world from the font into one sheet (one row of cells) and its boxes."""
    from ..media.captions import emoji_font

    font = emoji_font(font_path)
    sheet = Image.new("RGBA", (ATLAS_CELL * len(EMOJI), ATLAS_CELL), (0, 0, 0, 0))
    boxes = {}
    for i, name in enumerate(EMOJI):
        glyph = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text((0, 0), character(name), font=font, embedded_color=True)
        glyph = glyph.crop(glyph.getbbox())
        scale = ATLAS_CELL / max(glyph.size)
        glyph = glyph.resize(
            (max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))), Image.Resampling.LANCZOS
        )
        sheet.paste(glyph, (i * ATLAS_CELL, 0))
        boxes[name] = [i * ATLAS_CELL, 0, i * ATLAS_CELL + glyph.width, glyph.height]
    out.mkdir(parents=True, exist_ok=True)
    sheet.save(out / "atlas.png", optimize=True)
    (out / "atlas.json").write_text(json.dumps({"font": font_path.name, "cell": ATLAS_CELL, "boxes": boxes}) + "\n")
    return out / "atlas.png"


def background_image(background: tuple, side: int) -> Image.Image:
    """A plain colour, or a linear gradient between two colours across the frame at an angle."""
    if len(background) == 1:
        return Image.new("RGB", (side, side), tuple(background[0]))
    first, second, angle = background
    t = np.linspace(-0.5, 0.5, side)
    across = np.cos(math.radians(angle)) * t[None, :] + np.sin(math.radians(angle)) * t[:, None]
    share = (across - across.min()) / max(np.ptp(across), 1e-6)
    pixels = np.array(first, float) * (1 - share[..., None]) + np.array(second, float) * share[..., None]
    return Image.fromarray(np.round(pixels).astype(np.uint8))


def _glyph(sprite: EmojiSprite, scale: int) -> Image.Image:
    glyph = atlas()[sprite.name]
    k = sprite.size * scale / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * k)), max(1, round(glyph.height * k))), Image.Resampling.LANCZOS)
    if sprite.angle:
        glyph = glyph.rotate(sprite.angle, resample=Image.Resampling.BICUBIC, expand=True)
    return glyph


def render(sprite: EmojiSprite | None, background: tuple | None = None) -> np.ndarray:
    """64x64x3 uint8; `None` draws the empty background (`background`, else grey)."""
    k = _SUPERSAMPLE
    background = background or (sprite.background if sprite else ((128, 128, 128),))
    image = background_image(background, SIDE * k).convert("RGBA")
    if sprite is not None:
        glyph = _glyph(sprite, k)
        image.alpha_composite(glyph, (round(sprite.x * k - glyph.width / 2), round(sprite.y * k - glyph.height / 2)))
    return np.asarray(image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BOX))


def random_background(rng: np.random.Generator) -> tuple:
    """A plain colour of any hue and lightness, or (a third of the time) a gradient between two."""

    def colour():
        return tuple(int(c) for c in rng.integers(0, 256, 3))

    if rng.random() < 1 / 3:
        return (colour(), colour(), float(rng.uniform(0, 360)))
    return (colour(),)


def random_sprite(rng: np.random.Generator, name: str | None = None) -> EmojiSprite:
    """Any emoji (or `name`), any size of the bank's, anywhere it fits, mostly upright (a quarter at any angle)."""
    size = float(rng.uniform(*BANK_SIZES))
    upright = rng.random() < 0.75
    angle = float(rng.normal(0, 10)) if upright else float(rng.uniform(-180, 180))
    margin = size / (2 if upright else math.sqrt(2)) + 1
    return EmojiSprite(
        name=name or str(rng.choice(EMOJI)),
        x=float(rng.uniform(margin, SIDE - margin)),
        y=float(rng.uniform(margin, SIDE - margin)),
        size=size,
        angle=angle,
        background=random_background(rng),
    )


def motion(sprite: EmojiSprite, name: str, frames: int = FRAMES) -> list[EmojiSprite]:
    """The sprite at each frame of a named motion; the sprite's own place, size and angle are ignored."""
    out = []
    s = SIZE
    for i in range(frames):
        p = i / (frames - 1)  # 0 .. 1
        if name == "bouncing":  # two bounces on a floor, drifting right
            state = dict(x=18 + 28 * p, y=46 - 24 * abs(math.sin(2 * math.pi * p)), size=s, angle=0.0)
        elif name == "sliding":
            state = dict(x=16 + 32 * p, y=32, size=s, angle=0.0)
        elif name == "growing":
            state = dict(x=32, y=32, size=12 + 30 * p, angle=0.0)
        elif name == "spinning":
            state = dict(x=32, y=32, size=s, angle=360 * p)
        elif name == "popping":  # springs up from nothing, overshoots, settles
            grow = min(1.0, p / 0.35)
            state = dict(x=32, y=32, size=4 + 30 * grow + 10 * math.sin(math.pi * grow) * (p < 0.6), angle=0.0)
        elif name == "running":  # travels across with a stride's bob, leaning forward
            state = dict(x=16 + 32 * p, y=34 - 4 * abs(math.sin(4 * math.pi * p)), size=s, angle=-8.0)
        elif name == "dancing":  # sways side to side, tilting with the sway
            sway = math.sin(4 * math.pi * p)
            state = dict(x=32 + 10 * sway, y=32 - 2 * abs(sway), size=s, angle=-20 * sway)
        else:
            raise ValueError(f"unknown motion {name!r}: one of {', '.join(MOTIONS)}")
        out.append(replace(sprite, **state))
    return out


def render_clip(sprite: EmojiSprite, name: str, frames: int = FRAMES) -> np.ndarray:
    """f 64 64 3 uint8."""
    return np.stack([render(s) for s in motion(sprite, name, frames)])


def clip_caption(sprite: EmojiSprite, name: str) -> str:
    return f"{sprite.caption()} {name}"


def vocabulary() -> list[str]:
    """Every word a caption of this world can hold."""
    return list(dict.fromkeys(["a", *(word for name in EMOJI for word in name.split()), *MOTIONS]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Build the emoji world's atlas from Noto Color Emoji.")
    p.add_argument("--atlas", action="store_true", help="draw the atlas from the font into memestar/tiny/emoji/")
    p.add_argument("--font", type=Path, help="NotoColorEmoji.ttf (default: the system's, as captions find it)")
    a = p.parse_args(argv)
    if a.atlas:
        from ..media.captions import EMOJI_INSTALL, emoji_font_path

        font = a.font or emoji_font_path()
        if font is None:
            p.error(f"no emoji font found: {EMOJI_INSTALL}")
        print(build_atlas(font))


if __name__ == "__main__":
    main()
