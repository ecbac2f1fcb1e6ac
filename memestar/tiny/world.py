"""The tiny model's synthetic world: one flat shape in a named colour on a grey background, 64x64.

Everything is a pure function of its arguments (or of a seed), so images, clips and captions are the
same on every machine. A `Sprite` says what is drawn; `render` draws it (4x supersampled, so edges are
anti-aliased); `MOTIONS` turn a sprite into 16 frames ("a red circle bouncing").
"""

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

SIDE = 64
BACKGROUND = (128, 128, 128)
COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "blue": (40, 90, 225),
    "purple": (145, 50, 195),
}
SHAPES = ("circle", "square", "triangle", "star")
SIZES = {"small": 9.0, "big": 15.0}  # radius (centre to corner) in pixels
MOTIONS = ("bouncing", "sliding", "growing", "spinning", "popping")
FRAMES = 16
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Sprite:
    colour: str
    shape: str
    x: float = 32.0  # centre, pixels
    y: float = 32.0
    radius: float = 12.0
    angle: float = 0.0  # degrees

    def caption(self, size_word: bool = False) -> str:
        size = ""
        if size_word:
            size = "small " if self.radius <= sum(SIZES.values()) / 2 else "big "
        return f"a {size}{self.colour} {self.shape}"


def outline(sprite: Sprite) -> list[tuple[float, float]]:
    """The polygon of a shape (a circle is drawn as an ellipse, its outline is for reference only)."""
    s = sprite
    if s.shape == "circle":
        corners, radii = 48, [s.radius]
    elif s.shape == "square":
        corners, radii = 4, [s.radius]
    elif s.shape == "triangle":
        corners, radii = 3, [s.radius]
    elif s.shape == "star":
        corners, radii = 10, [s.radius, 0.45 * s.radius]
    else:
        raise ValueError(f"unknown shape {s.shape!r}")
    offset = 45 if s.shape == "square" else -90  # squares sit flat, triangles and stars point up
    return [
        (
            s.x + radii[i % len(radii)] * math.cos(math.radians(offset + s.angle + 360 * i / corners)),
            s.y + radii[i % len(radii)] * math.sin(math.radians(offset + s.angle + 360 * i / corners)),
        )
        for i in range(corners)
    ]


def render(sprite: Sprite | None, background=BACKGROUND, colour=None) -> np.ndarray:
    """64x64x3 uint8; `None` draws the empty background; `colour` overrides the sprite's."""
    k = _SUPERSAMPLE
    image = Image.new("RGB", (SIDE * k, SIDE * k), background)
    if sprite is not None:
        draw = ImageDraw.Draw(image)
        colour = colour or COLOURS[sprite.colour]
        if sprite.shape == "circle":
            r = sprite.radius * k
            draw.ellipse([sprite.x * k - r, sprite.y * k - r, sprite.x * k + r, sprite.y * k + r], fill=colour)
        else:
            draw.polygon([(x * k, y * k) for x, y in outline(sprite)], fill=colour)
    return np.asarray(image.resize((SIDE, SIDE), Image.Resampling.BOX))


def render_mask(sprite: Sprite) -> np.ndarray:
    """64x64 float32 in [0, 1]: how much of each pixel the sprite covers (the true matte of `render`)."""
    return render(sprite, background=(0, 0, 0), colour=(255, 255, 255))[..., 0].astype(np.float32) / 255


def random_sprite(rng: np.random.Generator) -> Sprite:
    """Any colour and shape, a radius between small and big, anywhere it fits, any angle."""
    radius = float(rng.uniform(SIZES["small"] - 1, SIZES["big"] + 1))
    margin = radius + 2
    return Sprite(
        colour=str(rng.choice(list(COLOURS))),
        shape=str(rng.choice(SHAPES)),
        x=float(rng.uniform(margin, SIDE - margin)),
        y=float(rng.uniform(margin, SIDE - margin)),
        radius=radius,
        angle=float(rng.uniform(0, 360)),
    )


def motion(sprite: Sprite, name: str, frames: int = FRAMES) -> list[Sprite]:
    """The sprite at each frame of a named motion; the sprite's own position and size are ignored."""
    out = []
    for i in range(frames):
        p = i / (frames - 1)  # 0 .. 1
        r = 12.0
        if name == "bouncing":  # two bounces on a floor, drifting right
            s = replace(sprite, x=18 + 28 * p, y=50 - 28 * abs(math.sin(2 * math.pi * p)), radius=r)
        elif name == "sliding":
            s = replace(sprite, x=14 + 36 * p, y=32, radius=r)
        elif name == "growing":
            s = replace(sprite, x=32, y=32, radius=5 + 13 * p)
        elif name == "spinning":
            s = replace(sprite, x=32, y=32, radius=15, angle=sprite.angle + 180 * p)
        elif name == "popping":  # springs up from nothing, overshoots, settles
            grow = min(1.0, p / 0.35)
            s = replace(sprite, x=32, y=32, radius=2 + 14 * grow + 5 * math.sin(math.pi * grow) * (p < 0.6))
        else:
            raise ValueError(f"unknown motion {name!r}: one of {', '.join(MOTIONS)}")
        out.append(s)
    return out


def render_clip(sprite: Sprite, name: str, frames: int = FRAMES) -> np.ndarray:
    """f 64 64 3 uint8."""
    return np.stack([render(s) for s in motion(sprite, name, frames)])


def clip_caption(sprite: Sprite, name: str) -> str:
    return f"{sprite.caption()} {name}"


def vocabulary() -> list[str]:
    """Every word a caption of this world can hold."""
    return ["a", *COLOURS, *SHAPES, *SIZES, *MOTIONS]
