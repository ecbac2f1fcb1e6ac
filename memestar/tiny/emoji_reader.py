"""Reading a 64x64 frame of the emoji world back: which emoji it shows, where and how big.

1. The background is a plane per colour channel (a plain colour or a linear gradient) fitted to the frame's border.
2. The subject is every pixel far from that plane (specks dropped); its centroid and sqrt(area) say where and how big.
3. Which emoji: the square around the subject's box, at 24x24, against every emoji of the world at every 10 degrees,
   each composited over the same fitted background (so an emoji's parts that match the background count as they
   look), both softened by the same Gaussian blur; the nearest in mean squared error is the reading. Nearest-render
   matching needs no training and reads the world's own renders: it is the emoji world's counterpart of the shapes
   world's analytic recogniser.

The blur is there because generated frames are softer than renders: unblurred, the sharp renders lose to the few
smooth ones (the elephant above all) on every soft frame. Against 1,589 hand-labelled frames of generated clips (426
of them in `tests/data/emoji-labelled/`), the reader agrees with the label on 0.905 of them unblurred and 0.964 at
the blur below; clean renders read the same (benchmarks/results/emoji-reader-2026-12-07.md).
"""

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .emoji_world import EMOJI, atlas
from .recognise import MIN_AREA, _blobs

FOREGROUND_DISTANCE = 48  # RGB distance from the fitted background that makes a pixel part of the subject
TEMPLATE = 24  # px: the side at which a subject is compared with the renders
ANGLES = tuple(range(0, 360, 10))
BORDER = 2  # px of the frame's edge the background is fitted on
BLUR = 1.5  # px at TEMPLATE size: the Gaussian's sigma (1.5 and 2 read the labelled frames best; 0.7: 0.949, 3: 0.958)


@dataclass
class EmojiReading:
    name: str | None  # None: no subject found
    x: float  # centroid, pixels
    y: float
    size: float  # sqrt(area), pixels
    area: int
    blobs: int  # subject-sized blobs seen
    distance: float  # mean squared error (0..1 per channel) to the nearest render: how sure the reading is


def soften(squares: np.ndarray) -> np.ndarray:
    """A Gaussian blur of sigma BLUR over (..., T, T, c) squares, their edges extended."""
    radius = int(3 * BLUR + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / BLUR) ** 2)
    kernel /= kernel.sum()
    for axis in (-3, -2):
        padding = [(0, 0)] * squares.ndim
        padding[axis] = (radius, radius)
        padded = np.pad(squares, padding, mode="edge")
        squares = sum(
            weight * np.take(padded, range(i, i + squares.shape[axis]), axis=axis) for i, weight in enumerate(kernel)
        )
    return squares.astype(np.float32)


@functools.cache
def templates() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Premultiplied colour (n, T*T, 3) and coverage (n, T*T, 1) in [0, 1] of every emoji at every angle, each in the
    square around its opaque box and softened, and the emoji name of each row."""
    colours, alphas, names = [], [], []
    for name in EMOJI:
        glyph = atlas()[name]
        for angle in ANGLES:
            turned = glyph.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True) if angle else glyph
            left, top, right, bottom = turned.getchannel("A").point(lambda a: 255 if a > 127 else 0).getbbox()
            side = max(right - left, bottom - top)
            cx, cy = (left + right) / 2 + side, (top + bottom) / 2 + side  # in `padded`
            padded = Image.new("RGBA", (turned.width + 2 * side, turned.height + 2 * side), (0, 0, 0, 0))
            padded.paste(turned, (side, side))
            box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
            square = np.asarray(
                padded.convert("RGBa").resize((TEMPLATE, TEMPLATE), Image.Resampling.BOX, box=box), np.float32
            )
            colours.append(square[..., :3].reshape(-1, 3) / 255)
            alphas.append(square[..., 3].reshape(-1, 1) / 255)
            names.append(name)
    t = TEMPLATE
    colours = soften(np.stack(colours).reshape(-1, t, t, 3)).reshape(-1, t * t, 3)
    alphas = soften(np.stack(alphas).reshape(-1, t, t, 1)).reshape(-1, t * t, 1)
    return colours, alphas, tuple(names)


def fit_background(frame: np.ndarray, pad: int = 0) -> np.ndarray:
    """The plane per channel through the border's pixels, refitted without the border pixels it fits worst (a subject
    touching the edge); returns it over the frame and `pad` pixels around it, (h + 2 pad, w + 2 pad, 3) float."""
    h, w = frame.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w]
    ring = np.zeros((h, w), bool)
    ring[:BORDER], ring[-BORDER:], ring[:, :BORDER], ring[:, -BORDER:] = True, True, True, True
    design = np.stack([np.ones(ring.sum()), cols[ring] / w, rows[ring] / h], axis=1)
    values = frame[ring].astype(float)
    keep = np.ones(len(values), bool)
    for _ in range(2):
        coefficients = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        error = np.linalg.norm(design @ coefficients - values, axis=1)
        keep = error <= max(np.quantile(error, 0.8), 4.0)
    rows, cols = np.mgrid[-pad : h + pad, -pad : w + pad]
    full = np.stack([np.ones(rows.size), cols.ravel() / w, rows.ravel() / h], axis=1)
    return (full @ coefficients).reshape(rows.shape + (3,))


def _square(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The box of a (h, w, 3) float image averaged down to TEMPLATE x TEMPLATE, per channel in [0, 1]."""
    channels = [
        np.asarray(
            Image.fromarray(image[..., c].astype(np.float32), mode="F").resize(
                (TEMPLATE, TEMPLATE), Image.Resampling.BOX, box=box
            )
        )
        for c in range(3)
    ]
    return np.stack(channels, axis=-1).reshape(-1, 3) / 255


def read_frame(frame: np.ndarray) -> EmojiReading:
    """What the frame shows; `name` is None when no subject is found."""
    background = fit_background(frame)
    mask = np.linalg.norm(frame.astype(float) - background, axis=-1) > FOREGROUND_DISTANCE
    blobs = [b for b in _blobs(mask) if len(b) >= MIN_AREA]
    if not blobs:
        return EmojiReading(None, float("nan"), float("nan"), 0.0, 0, 0, float("nan"))
    pixels = np.concatenate(blobs)
    top, left = pixels.min(axis=0)
    bottom, right = pixels.max(axis=0) + 1
    side = max(bottom - top, right - left)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    # the square may leave the frame: beyond it, the frame is its fitted background
    pad = int(side)
    padded_background = fit_background(frame, pad)
    padded_frame = padded_background.copy()
    padded_frame[pad:-pad, pad:-pad] = frame
    box = (cx - side / 2 + pad, cy - side / 2 + pad, cx + side / 2 + pad, cy + side / 2 + pad)
    # (T*T) 3; the background varies slowly: the blurred template over the blurred background is the blurred composite
    seen, behind = (
        soften(_square(image, box).reshape(TEMPLATE, TEMPLATE, 3)).reshape(-1, 3)
        for image in (padded_frame, padded_background)
    )
    colours, alphas, names = templates()
    composited = colours + (1 - alphas) * behind[None]  # n (T*T) 3
    errors = ((composited - seen[None]) ** 2).mean(axis=(1, 2))
    best = int(np.argmin(errors))
    y, x = pixels.mean(axis=0) + 0.5
    big_enough = [b for b in blobs if len(b) >= max(MIN_AREA, 0.25 * len(blobs[0]))]
    return EmojiReading(
        names[best], float(x), float(y), float(np.sqrt(len(pixels))), len(pixels), len(big_enough), float(errors[best])
    )


def read_clip_frames(frames: np.ndarray) -> list[EmojiReading]:
    return [read_frame(f) for f in frames]
