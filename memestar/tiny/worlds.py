"""The two synthetic worlds `meme eval` and `meme demo` measure in, behind one interface.

- `shapes` (world.py): a flat shape in a named colour on grey; the bundled `tiny` base draws it. A subject is
  (colour, shape), and both are read back and scored.
- `emoji` (emoji_world.py): a Noto Color Emoji on a coloured background; the bundled `emoji` base draws it. A subject
  is (emoji name,).

Each world plans, per motion, one source subject to tune on and new subjects to make move the same way; no new
subject is anyone's source, so every new subject is one the memes never saw in motion.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import emoji_reader, emoji_world, recognise, world

Subject = tuple[str, ...]


@dataclass(frozen=True)
class Reading:
    """What one frame shows: the subject's parts (None where nothing was found), centroid and size in pixels."""

    subject: Subject | None
    x: float
    y: float
    size: float


@dataclass(frozen=True)
class World:
    name: str
    base: str  # the bundled base trained on it
    parts: tuple[str, ...]  # what a subject is made of, each scored as "<part>_right"
    motions: tuple[str, ...]
    plan: dict[str, tuple[Subject, list[Subject]]]  # motion -> (source subject, new subjects)
    caption: Callable[[Subject, str], str]  # a subject in motion: "a red circle bouncing"
    clip: Callable[[Subject, str], np.ndarray]  # f h w 3 uint8
    read_frames: Callable[[np.ndarray], list[Reading]]

    @property
    def right_metrics(self) -> tuple[str, ...]:
        return tuple(f"{part}_right" for part in self.parts)


def _read_shapes(frames: np.ndarray) -> list[Reading]:
    readings = recognise.read_clip_frames(frames)
    return [Reading((r.colour, r.shape) if r.colour else None, r.x, r.y, r.size) for r in readings]


def _read_emoji(frames: np.ndarray) -> list[Reading]:
    readings = emoji_reader.read_clip_frames(frames)
    return [Reading((r.name,) if r.name else None, r.x, r.y, r.size) for r in readings]


# (source subject, new subjects) per motion: new colour, new shape, both, and a third colour and shape.
SHAPES_PLAN = {
    "bouncing": (("red", "circle"), [("blue", "circle"), ("red", "square"), ("green", "triangle"), ("yellow", "star")]),
    "sliding": (
        ("blue", "square"),
        [("red", "square"), ("blue", "star"), ("yellow", "circle"), ("purple", "triangle")],
    ),
    "growing": (
        ("green", "triangle"),
        [("orange", "triangle"), ("green", "circle"), ("blue", "square"), ("red", "star")],
    ),
    "spinning": (
        ("purple", "star"),
        [("green", "star"), ("purple", "square"), ("red", "triangle"), ("blue", "circle")],
    ),
    "popping": (
        ("orange", "star"),
        [("blue", "star"), ("orange", "circle"), ("purple", "square"), ("green", "triangle")],
    ),
}

# The original design's rows first: "popping cat" -> cow, rabbit, pig, dog; a running apple -> new fruit.
EMOJI_PLAN = {
    "popping": (("cat face",), [("cow face",), ("rabbit face",), ("pig face",), ("dog face",)]),
    "running": (("green apple",), [("pineapple",), ("banana",), ("blueberries",), ("strawberry",)]),
    "bouncing": (("soccer ball",), [("frog face",), ("doughnut",), ("ghost",), ("tiger face",)]),
    "sliding": (("turtle",), [("penguin",), ("rocket",), ("fox face",), ("hamburger",)]),
    "growing": (("sunflower",), [("cactus",), ("birthday cake",), ("panda face",), ("fire",)]),
    "spinning": (("slice of pizza",), [("lemon",), ("crown",), ("grinning face",), ("octopus",)]),
    "dancing": (("chicken",), [("monkey face",), ("unicorn face",), ("robot face",), ("elephant",)]),
}
EMOJI_CLIP_BACKGROUND = ((120, 170, 230),)  # the source clips' sky blue: every planned emoji stands out on it

WORLDS = {
    "shapes": World(
        name="shapes",
        base="tiny",
        parts=("colour", "shape"),
        motions=world.MOTIONS,
        plan=SHAPES_PLAN,
        caption=lambda subject, motion: world.clip_caption(world.Sprite(*subject), motion),
        clip=lambda subject, motion: world.render_clip(world.Sprite(*subject), motion),
        read_frames=_read_shapes,
    ),
    "emoji": World(
        name="emoji",
        base="emoji",
        parts=("emoji",),
        motions=emoji_world.MOTIONS,
        plan=EMOJI_PLAN,
        caption=lambda subject, motion: emoji_world.clip_caption(emoji_world.EmojiSprite(*subject), motion),
        clip=lambda subject, motion: emoji_world.render_clip(
            emoji_world.EmojiSprite(*subject, background=EMOJI_CLIP_BACKGROUND), motion
        ),
        read_frames=_read_emoji,
    ),
}
